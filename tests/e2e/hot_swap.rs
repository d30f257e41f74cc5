//! Publish, promote and roll back under a concurrent request loop that counts
//! every failed request; none is allowed. Routing survives a restart.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// The longest the client loop may run, whatever happens.
const LOOP_LIMIT: Duration = Duration::from_secs(90);
/// The longest a routing change may take to show in answers.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Answers per version.
    by_version: Mutex<BTreeMap<String, u64>>,
    /// The first few failures, to show.
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }
}

fn factor_of(version: &str) -> Option<f64> {
    match version {
        v if v == SCALE_V1.0 => Some(SCALE_V1.1),
        v if v == SCALE_V2.0 => Some(SCALE_V2.1),
        _ => None,
    }
}

/// One client: infer in a loop until `stop`, checking every answer.
fn client(s: &Server, id: u64, stop: &AtomicBool, tally: &Tally) {
    let started = Instant::now();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) && started.elapsed() < LOOP_LIMIT {
        i += 1;
        let x: Vec<f64> = vec![(id * 1000 + i % 1000) as f64, 1.0, 0.25];
        let body = scale_request(&x).to_string();
        let reply = match s.try_request(
            "POST",
            "/v2/models/scale/infer",
            Some(("application/json", body.as_bytes())),
        ) {
            Ok(r) => r,
            Err(e) => {
                tally.fail(format!("transport: {e}"));
                continue;
            }
        };
        if reply.status != 200 {
            tally.fail(format!("HTTP {}: {}", reply.status, reply.body));
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&reply.body) else {
            tally.fail(format!("not JSON: {}", reply.body));
            continue;
        };
        let version = v["model_version"].as_str().unwrap_or_default().to_string();
        let Some(factor) = factor_of(&version) else {
            tally.fail(format!("unknown version: {}", reply.body));
            continue;
        };
        let y: Vec<f64> = v["outputs"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["name"] == "y"))
            .map(|o| {
                flatten(&o["data"])
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect()
            })
            .unwrap_or_default();
        let expected: Vec<f64> = x.iter().map(|xi| xi * factor).collect();
        if y != expected {
            tally.fail(format!(
                "version {version} answered {y:?} for {x:?}, expected {expected:?}"
            ));
            continue;
        }
        tally.ok.fetch_add(1, Ordering::SeqCst);
        *tally.by_version.lock().unwrap().entry(version).or_default() += 1;
    }
}

/// Waits (bounded) until an answer comes from `version`, then checks that
/// every later answer does too.
fn wait_for_version(s: &Server, version: &str) {
    wait_until(SWITCH_TIMEOUT, &format!("answers from {version}"), || {
        let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
        (r["model_version"] == version).then_some(())
    });
    // After a routing change has shown, no answer comes from the old one.
    for _ in 0..20 {
        let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
        assert_eq!(
            r["model_version"], version,
            "an answer from another version after the switch: {r}"
        );
    }
}

fn cli(args: &[&str]) -> CliRun {
    trademl(args.iter().copied())
}

fn listing(s: &Server) -> Value {
    s.get("/v2/repository/models/scale/versions")
        .expect(200)
        .json()
}

#[test]
fn publish_promote_rollback_under_load_fails_no_request() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    let s = Server::start(repo.path());
    let url = s.url.clone();
    let stop = AtomicBool::new(false);
    let tally = Tally::default();

    thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|id| {
                let (s, stop, tally) = (&s, &stop, &tally);
                scope.spawn(move || client(s, id, stop, tally))
            })
            .collect();
        // Make sure the stop flag is raised whatever happens below.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _guard = StopOnDrop(&stop);

        wait_until(SWITCH_TIMEOUT, "the clients' first answers", || {
            (tally.ok.load(Ordering::SeqCst) >= 20).then_some(())
        });

        // Publish 2.0.0 with the CLI: it is stored, not routed.
        cli(&["publish", f.scale_v2.to_str().unwrap(), "--server", &url]).ok();
        let l = listing(&s);
        let versions: Vec<_> = l["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["version"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(versions.contains(&"2.0.0".to_string()), "{l}");
        assert_eq!(routed_versions(&l), vec!["1.0.0"], "{l}");
        for _ in 0..10 {
            let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
            assert_eq!(
                r["model_version"], "1.0.0",
                "unpromoted 2.0.0 answered: {r}"
            );
        }
        // But it can be asked for by version already.
        let r = s
            .post_json(
                "/v2/models/scale/versions/2.0.0/infer",
                &scale_request(&[1.0]),
            )
            .expect(200)
            .json();
        assert_eq!(output_f64(&r, "y"), vec![SCALE_V2.1]);
        let before = tally.ok.load(Ordering::SeqCst);
        wait_until(SWITCH_TIMEOUT, "more answers", || {
            (tally.ok.load(Ordering::SeqCst) >= before + 20).then_some(())
        });

        // Promote with the CLI.
        cli(&["promote", "scale", "2.0.0", "--server", &url]).ok();
        wait_for_version(&s, "2.0.0");
        assert_eq!(routed_versions(&listing(&s)), vec!["2.0.0"]);
        let before = tally.ok.load(Ordering::SeqCst);
        wait_until(SWITCH_TIMEOUT, "more answers", || {
            (tally.ok.load(Ordering::SeqCst) >= before + 20).then_some(())
        });

        // Roll back with the CLI.
        cli(&["rollback", "scale", "--server", &url]).ok();
        wait_for_version(&s, "1.0.0");
        assert_eq!(routed_versions(&listing(&s)), vec!["1.0.0"]);
        let before = tally.ok.load(Ordering::SeqCst);
        wait_until(SWITCH_TIMEOUT, "more answers", || {
            (tally.ok.load(Ordering::SeqCst) >= before + 20).then_some(())
        });

        // Promote again, over the HTTP API this time.
        let r = s
            .post_json(
                "/v2/repository/models/scale/promote",
                &json!({"version": "2.0.0"}),
            )
            .expect(200)
            .json();
        assert!(r.to_string().contains("2.0.0"), "{r}");
        wait_for_version(&s, "2.0.0");
        let before = tally.ok.load(Ordering::SeqCst);
        wait_until(SWITCH_TIMEOUT, "more answers", || {
            (tally.ok.load(Ordering::SeqCst) >= before + 20).then_some(())
        });

        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().expect("a client thread panicked");
        }
    });

    let failed = tally.failed.load(Ordering::SeqCst);
    let by_version = tally.by_version.lock().unwrap().clone();
    assert_eq!(
        failed,
        0,
        "{failed} requests failed ({} succeeded): {:#?}\n--- server stderr\n{}",
        tally.ok.load(Ordering::SeqCst),
        tally.failures.lock().unwrap(),
        s.stderr()
    );
    eprintln!("answers by version: {by_version:?}, failures: {failed}");
    assert!(
        by_version.get("1.0.0").is_some_and(|n| *n > 0),
        "{by_version:?}"
    );
    assert!(
        by_version.get("2.0.0").is_some_and(|n| *n > 0),
        "{by_version:?}"
    );

    // The `versions` command shows the same state.
    let out = cli(&["versions", "scale", "--server", &url]).ok();
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("trademl versions printed no JSON ({e}): {}", out.stdout));
    assert_eq!(routed_versions(&v), vec!["2.0.0"], "{v}");

    // The routing persists across a restart.
    drop(s);
    assert!(repo.path().join("scale").join("routing.json").is_file());
    assert!(repo.path().join("scale").join("2.0.0.wasm").is_file());
    let s = Server::start(repo.path());
    for _ in 0..5 {
        let r = s.infer("scale", &scale_request(&[2.0])).expect(200).json();
        assert_eq!(r["model_version"], "2.0.0", "{r}");
        assert_eq!(output_f64(&r, "y"), vec![2.0 * SCALE_V2.1]);
    }
    // Both versions are still there, and a rollback after the restart works.
    s.get("/v2/models/scale/versions/1.0.0").expect(200);
    s.post_empty("/v2/repository/models/scale/rollback")
        .expect(200);
    let r = s.infer("scale", &scale_request(&[2.0])).expect(200).json();
    assert_eq!(r["model_version"], "1.0.0", "{r}");
}

#[test]
fn routing_json_is_valid_after_every_change() {
    let f = fixtures();
    let repo = Repo::new();
    repo.add(&f.scale_v1, "scale", "1.0.0");
    let s = Server::start(repo.path());
    s.publish("scale", &std::fs::read(&f.scale_v2).unwrap())
        .expect(201);
    let routing = repo.path().join("scale").join("routing.json");
    let read = || -> Value {
        let text = std::fs::read_to_string(&routing)
            .unwrap_or_else(|e| panic!("{}: {e}", routing.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("routing.json is not JSON ({e}): {text}"))
    };
    for step in 0..6 {
        let expected = if step % 2 == 0 {
            s.post_json(
                "/v2/repository/models/scale/promote",
                &json!({"version": "2.0.0"}),
            )
            .expect(200);
            "2.0.0"
        } else {
            s.post_empty("/v2/repository/models/scale/rollback")
                .expect(200);
            "1.0.0"
        };
        let r = s.infer("scale", &scale_request(&[1.0])).expect(200).json();
        assert_eq!(r["model_version"], expected, "step {step}: {r}");
        let on_disk = read().to_string();
        assert!(
            on_disk.contains(expected),
            "step {step}: routing.json does not name {expected}: {on_disk}"
        );
    }
}
