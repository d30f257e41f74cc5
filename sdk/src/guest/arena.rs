//! [`CallArena`], a bump allocator in front of the system allocator for a
//! component that lives for one call, and [`use_call_arena!`](crate::use_call_arena).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use core::ptr;
use std::alloc::System;

/// The bytes of the arena's chunk: one page of WebAssembly memory, which the
/// chunk adds to a component's initial memory.
pub const CHUNK: usize = 64 << 10;

/// The chunk, aligned for any first-party allocation (a block that asks for
/// more is aligned within it).
#[repr(C, align(16))]
struct Chunk([MaybeUninit<u8>; CHUNK]);

/// A bump allocator in front of the system allocator, for a component that
/// lives for one call.
///
/// trademl instantiates a model afresh for every request and throws the
/// instance away after it, memory and all. The allocator Rust's standard
/// library brings to `wasm32-wasip2` (wasi-libc's `dlmalloc`) keeps free lists
/// for reuse that, in a one-call instance, mostly never comes; a one-row
/// prediction makes many small allocations (at least 18 for
/// anomaly-detection's: the inputs lowered into the guest, the outputs built,
/// then freed by the post-return), and their
/// bookkeeping was a measurable share of the call (docs/benchmarks.md, "The
/// eighteenth round").
///
/// `CallArena` serves allocations from a chunk of 64 KiB of its own, a static
/// in the component's initial memory (so no `memory.grow`, which costs a
/// one-row call more than the bookkeeping it saves), by moving a pointer up.
/// Only the most recent block is given back (so a `Vec` or `String` at the
/// top grows in place); the rest of the chunk is left to the instance's end.
/// What does not fit goes to the system allocator, as without the arena. A
/// call thus holds at most 64 KiB more than it would without it, however much
/// it allocates and frees: small calls run on the arena, large ones on
/// `dlmalloc`, whose reuse of freed memory they need.
///
/// A model opts in with [`use_call_arena!`](crate::use_call_arena). Memory
/// the arena gives back is reused only from its top, so an instance that
/// served call after call (which trademl's host never does) would run the
/// chunk down and continue on the system allocator.
pub struct CallArena {
    chunk: UnsafeCell<Chunk>,
    /// The offset of the chunk's next free byte.
    next: Cell<usize>,
}

// SAFETY: `wasm32-wasip2` components run on one thread; the build refuses a
// target with threads, where the cells would race.
#[cfg(not(target_feature = "atomics"))]
unsafe impl Sync for CallArena {}
#[cfg(target_feature = "atomics")]
compile_error!("CallArena is for single-threaded WebAssembly components");

impl CallArena {
    /// An arena with its chunk free.
    pub const fn new() -> Self {
        CallArena {
            chunk: UnsafeCell::new(Chunk([MaybeUninit::uninit(); CHUNK])),
            next: Cell::new(0),
        }
    }

    /// The address of the chunk's first byte.
    fn base(&self) -> usize {
        self.chunk.get() as usize
    }

    /// Takes `layout` from the chunk, if it fits.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base();
        let at = (base + self.next.get()).checked_next_multiple_of(layout.align())?;
        let next = at.checked_add(layout.size())? - base;
        if next > CHUNK {
            return None;
        }
        self.next.set(next);
        Some(at as *mut u8)
    }

    /// Whether `block` is in the chunk. (No block is empty: `GlobalAlloc`
    /// is never asked for zero bytes.)
    fn owns(&self, block: *mut u8) -> bool {
        (block as usize).wrapping_sub(self.base()) < CHUNK
    }

    /// Whether `block` of `size` bytes is the chunk's most recent block.
    fn is_last(&self, block: *mut u8, size: usize) -> bool {
        block as usize - self.base() + size == self.next.get()
    }

    /// Gives back the chunk from `block` up.
    fn give_back_from(&self, block: *mut u8) {
        self.next.set(block as usize - self.base());
    }
}

impl Default for CallArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: the chunk's blocks are disjoint (the pointer only rises, except to
// give back the most recent block), aligned as asked and inside the arena's
// own chunk, which no one else uses; every other block is the system
// allocator's, and goes back to it.
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(block) => block,
            // SAFETY: the caller's `layout` is passed on unchanged.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if self.owns(block) {
            if self.is_last(block, layout.size()) {
                self.give_back_from(block);
            }
        } else {
            // SAFETY: not the chunk's, so the system allocator's, with this
            // layout.
            unsafe { System.dealloc(block, layout) }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(block) {
            // SAFETY: the system allocator's block, with this layout.
            return unsafe { System.realloc(block, layout, new_size) };
        }
        // The most recent block grows or shrinks where it is, if the chunk
        // has room; any block shrinks where it is.
        if self.is_last(block, layout.size()) && block as usize - self.base() + new_size <= CHUNK {
            self.next.set(block as usize - self.base() + new_size);
            return block;
        }
        if new_size <= layout.size() {
            return block;
        }
        // SAFETY: the caller guarantees that `new_size`, rounded up to
        // `layout.align()`, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (larger than the old one).
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live and disjoint, and the old one's
            // `layout.size()` bytes fit in the new one.
            unsafe { ptr::copy_nonoverlapping(block, moved, layout.size()) };
            // SAFETY: the chunk's block, with its layout.
            unsafe { self.dealloc(block, layout) };
        }
        moved
    }
}

/// Makes [`CallArena`] the component's global allocator:
/// `trademl_sdk::use_call_arena!();` at a model crate's root.
///
/// Like [`export_model!`](crate::export_model) it expands to nothing off
/// `wasm32`, so native builds of the same crate (unit tests, trainers) keep
/// the system allocator.
#[macro_export]
macro_rules! use_call_arena {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        static TRADEML_CALL_ARENA: $crate::CallArena = $crate::CallArena::new();
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_in_the_chunk() {
        let arena = CallArena::new();
        let mut blocks = Vec::new();
        for (i, (size, align)) in [(3, 1), (8, 8), (1, 2), (24, 16), (5, 4), (64, 64)]
            .into_iter()
            .enumerate()
        {
            let block = unsafe { arena.alloc(layout(size, align)) };
            assert!(arena.owns(block), "block {i}");
            assert_eq!(block as usize % align, 0, "block {i} aligned to {align}");
            unsafe { ptr::write_bytes(block, i as u8, size) };
            blocks.push((block, size, i as u8));
        }
        for (block, size, fill) in blocks {
            let bytes = unsafe { core::slice::from_raw_parts(block, size) };
            assert!(
                bytes.iter().all(|&b| b == fill),
                "a later block overwrote {fill}"
            );
        }
    }

    #[test]
    fn only_the_most_recent_block_is_given_back() {
        let arena = CallArena::new();
        let a = unsafe { arena.alloc(layout(100, 8)) };
        let b = unsafe { arena.alloc(layout(100, 8)) };
        unsafe { arena.dealloc(a, layout(100, 8)) };
        let c = unsafe { arena.alloc(layout(100, 8)) };
        assert_ne!(c, a, "a block under another was handed out again");
        unsafe { arena.dealloc(c, layout(100, 8)) };
        let d = unsafe { arena.alloc(layout(100, 8)) };
        assert_eq!(d, c, "the top block was not given back");
        assert!(b < c);
    }

    #[test]
    fn the_top_block_grows_in_place_and_others_move_with_their_bytes() {
        let arena = CallArena::new();
        let a = unsafe { arena.alloc(layout(16, 8)) };
        unsafe { ptr::write_bytes(a, 7, 16) };
        let grown = unsafe { arena.realloc(a, layout(16, 8), 4096) };
        assert_eq!(grown, a, "the top block moved");
        let b = unsafe { arena.alloc(layout(16, 8)) };
        let moved = unsafe { arena.realloc(a, layout(4096, 8), 8192) };
        assert_ne!(moved, a);
        assert!(moved > b, "the moved block overlaps a later one");
        let bytes = unsafe { core::slice::from_raw_parts(moved, 16) };
        assert_eq!(bytes, [7; 16]);
        let shrunk = unsafe { arena.realloc(b, layout(16, 8), 8) };
        assert_eq!(shrunk, b, "a block shrank by moving");
    }

    #[test]
    fn what_does_not_fit_goes_to_the_system_allocator_and_back() {
        let arena = CallArena::new();
        let small = unsafe { arena.alloc(layout(CHUNK / 2, 8)) };
        assert!(arena.owns(small));
        let large = unsafe { arena.alloc(layout(CHUNK, 8)) };
        assert!(!large.is_null());
        assert!(
            !arena.owns(large),
            "a block larger than the rest of the chunk"
        );
        unsafe { ptr::write_bytes(large, 1, CHUNK) };
        // Growing a chunk block past the chunk moves it out, bytes and all.
        unsafe { ptr::write_bytes(small, 3, CHUNK / 2) };
        let out = unsafe { arena.realloc(small, layout(CHUNK / 2, 8), CHUNK * 2) };
        assert!(!arena.owns(out));
        let bytes = unsafe { core::slice::from_raw_parts(out, CHUNK / 2) };
        assert!(bytes.iter().all(|&b| b == 3));
        // The chunk's top went back with the moved block: small blocks fit again.
        let again = unsafe { arena.alloc(layout(64, 8)) };
        assert_eq!(again, small);
        // The system allocator's blocks grow and go back through it.
        let large = unsafe { arena.realloc(large, layout(CHUNK, 8), CHUNK * 3) };
        assert!(!arena.owns(large));
        unsafe {
            arena.dealloc(large, layout(CHUNK * 3, 8));
            arena.dealloc(out, layout(CHUNK * 2, 8));
        }
    }

    #[test]
    fn a_block_aligned_more_than_the_chunk_is_aligned_wherever_it_goes() {
        let arena = CallArena::new();
        let align = CHUNK * 2;
        let block = unsafe { arena.alloc(layout(64, align)) };
        assert!(!block.is_null());
        assert_eq!(block as usize % align, 0);
        unsafe { arena.dealloc(block, layout(64, align)) };
    }
}
