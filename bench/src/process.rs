//! A server under test, run as its own process group: started, waited for,
//! measured (resident memory of it and its children) and stopped.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running server process.
pub struct Server {
    child: Child,
    what: String,
}

impl Server {
    /// Start `program` with `args`, its output to `log`, and wait until
    /// `ready` answers 200.
    pub fn start(
        what: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
        ready: &str,
        timeout: Duration,
    ) -> Result<Server> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own group, so that stopping it stops its workers too.
            .process_group(0);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {what}: {}", program.display()))?;
        let mut server = Server {
            child,
            what: what.to_string(),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{what} exited with {status} before it was ready; the end of its log:\n{}",
                    tail(log)
                );
            }
            if let Ok(reply) = agent.get(ready).call()
                && reply.status() == 200
            {
                return Ok(server);
            }
            if started.elapsed() > timeout {
                bail!(
                    "{what} was not ready at {ready} after {timeout:?}; the end of its log:\n{}",
                    tail(log)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server and every process it started.
    pub fn memory(&self) -> Result<Memory> {
        memory_of_tree(self.pid())
    }

    /// Sample [`Server::memory`] every 50 ms while `work` runs; the largest
    /// figures seen.
    pub fn peak_memory_during<T>(&self, work: impl FnOnce() -> T) -> Result<(T, Memory)> {
        let pid = self.pid();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = Memory::default();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = memory_of_tree(pid) {
                        peak = peak.max(m);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                peak
            })
        };
        let result = work();
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.join().expect("memory sampler");
        Ok((result, peak.max(self.memory()?)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                // Workers of the group that outlive their parent.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &group])
                    .stderr(Stdio::null())
                    .status();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.what);
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Memory {
    /// Sum of the processes' resident set sizes (`VmRSS`), KiB. Pages
    /// shared between the processes are counted once per process.
    pub rss_kib: u64,
    /// Sum of the processes' proportional set sizes (`Pss`), KiB: shared
    /// pages divided among the processes that share them.
    pub pss_kib: u64,
    /// How many processes.
    pub processes: u64,
}

impl Memory {
    fn max(self, other: Memory) -> Memory {
        Memory {
            rss_kib: self.rss_kib.max(other.rss_kib),
            pss_kib: self.pss_kib.max(other.pss_kib),
            processes: self.processes.max(other.processes),
        }
    }
}

fn memory_of_tree(root: u32) -> Result<Memory> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent is the second field after the command name, which is in parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut memory = Memory::default();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        let field = |file: &str, key: &str| -> Option<u64> {
            let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
            let line = text.lines().find(|l| l.starts_with(key))?;
            line[key.len()..].split_whitespace().next()?.parse().ok()
        };
        let Some(rss) = field("status", "VmRSS:") else {
            if pid == root {
                bail!("process {root} is gone");
            }
            continue;
        };
        memory.rss_kib += rss;
        memory.pss_kib += field("smaps_rollup", "Pss:").unwrap_or(rss);
        memory.processes += 1;
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    Ok(memory)
}

/// The last lines of a log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A free TCP port on loopback (free when asked; the server binds it next).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_of_a_tree_counts_children() {
        let alone = memory_of_tree(std::process::id()).unwrap();
        assert!(alone.rss_kib > 0 && alone.pss_kib > 0);
        // A shell with two children of its own.
        let mut shell = Command::new("sh")
            .args(["-c", "sleep 5 & sleep 5; wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let tree = memory_of_tree(shell.id()).unwrap();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", shell.id())])
            .stderr(Stdio::null())
            .status();
        shell.kill().ok();
        shell.wait().unwrap();
        assert_eq!(tree.processes, 3, "{tree:?}");
        assert!(tree.rss_kib > 0);
    }

    #[test]
    fn a_gone_process_is_an_error() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(memory_of_tree(pid).is_err());
    }
}
