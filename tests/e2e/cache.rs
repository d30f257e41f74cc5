//! The compiled cache: a restart loads compiled code from it, and a cache
//! entry changed on disk is detected and discarded, never executed.

use crate::support::*;

fn cache_entries(repo: &Repo) -> Vec<std::path::PathBuf> {
    let dir = repo.path().join(".cache");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_restart_uses_the_cache_and_a_changed_entry_is_not_executed() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");

    let first = Server::start(repo.path());
    first.wait_for_log_line(std::time::Duration::from_secs(30), |l| {
        l.contains("loaded") && l.contains("cached=false")
    });
    drop(first);
    let entries = cache_entries(&repo);
    assert_eq!(entries.len(), 1, "{entries:?}");

    let second = Server::start(repo.path());
    second.wait_for_log_line(std::time::Duration::from_secs(30), |l| {
        l.contains("loaded") && l.contains("cached=true")
    });
    let r = second
        .infer("scale", &scale_request(&[2.0]))
        .expect(200)
        .json();
    assert_eq!(output_f64(&r, "y"), vec![2.0 * SCALE_V1.1]);
    drop(second);

    // Flip one bit in the middle of the compiled code.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&entries[0], &bytes).unwrap();

    let third = Server::start(repo.path());
    third.wait_for_log_line(std::time::Duration::from_secs(30), |l| {
        l.contains("discarding compiled cache entry") && l.contains("does not verify")
    });
    third.wait_for_log_line(std::time::Duration::from_secs(30), |l| {
        l.contains("loaded") && l.contains("cached=false")
    });
    let r = third
        .infer("scale", &scale_request(&[2.0]))
        .expect(200)
        .json();
    assert_eq!(output_f64(&r, "y"), vec![2.0 * SCALE_V1.1]);
    // The entry was compiled afresh and stored again, authentic this time.
    assert_ne!(std::fs::read(&cache_entries(&repo)[0]).unwrap(), bytes);
}
