//! The `memory` binary, run as a user runs it: export, import into another backend and
//! export again gives the same bytes; a bad line is refused with its number and nothing of
//! its batch is written; an import run twice, or killed and run again, leaves the same store;
//! prune's dry run and real run agree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use memory_core::testing::samples;
use memory_core::{Embedding, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};

fn memory(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memory"))
        .args(args)
        .env_remove("MEMORY_STORE")
        .env_remove("TURSO_DATABASE_URL")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = memory(args);
    assert!(
        out.status.success(),
        "memory {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A libSQL file holding episodes (with embeddings), patterns and heuristics.
async fn filled(path: &Path, episodes: u64) {
    let store = TursoStorage::open(TursoConfig::local(path)).await.unwrap();
    let items: Vec<_> = (0..episodes)
        .map(|i| {
            let mut e = samples::episode(i);
            e.embedding = Embedding::new(vec![1.0, i as f32, 0.5]).ok();
            e
        })
        .collect();
    for chunk in items.chunks(1_000) {
        store.store_episodes(chunk).await.unwrap();
    }
    store
        .store_patterns(&(0..30).map(samples::pattern).collect::<Vec<_>>())
        .await
        .unwrap();
    store
        .store_heuristics(&(0..12).map(samples::heuristic).collect::<Vec<_>>())
        .await
        .unwrap();
}

fn export(store: &Path, to: &Path) -> Vec<u8> {
    let out = ok(&["--store", s(store), "export"]);
    std::fs::write(to, &out.stdout).unwrap();
    out.stdout
}

#[tokio::test]
async fn export_import_export_gives_the_same_bytes_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    filled(&source, 120).await;
    let first = export(&source, &dir.path().join("a.jsonl"));
    let lines = first
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines, 120 + 30 + 12, "one line per item");

    let redb = dir.path().join("copy.redb");
    ok(&[
        "--store",
        s(&redb),
        "import",
        s(&dir.path().join("a.jsonl")),
    ]);
    let second = export(&redb, &dir.path().join("b.jsonl"));
    assert!(first == second, "redb's export differs");

    let libsql = dir.path().join("copy.db");
    ok(&[
        "--store",
        s(&libsql),
        "import",
        s(&dir.path().join("b.jsonl")),
        "--batch",
        "7",
    ]);
    let third = export(&libsql, &dir.path().join("c.jsonl"));
    assert!(first == third, "the second libSQL file's export differs");

    // Twice changes nothing.
    ok(&[
        "--store",
        s(&libsql),
        "import",
        s(&dir.path().join("b.jsonl")),
    ]);
    assert!(export(&libsql, &dir.path().join("d.jsonl")) == first);

    let stats = ok(&["--store", s(&libsql), "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        (&stats["episodes"], &stats["patterns"], &stats["heuristics"]),
        (&120.into(), &30.into(), &12.into())
    );
}

/// Spoils line 8 of an export.
type Spoil = Box<dyn Fn(&mut Vec<String>)>;

#[tokio::test]
async fn a_bad_line_is_refused_with_its_number_and_nothing_of_its_batch_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    filled(&source, 20).await;
    let good = export(&source, &dir.path().join("good.jsonl"));
    let text = String::from_utf8(good).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();

    let cases: Vec<(&str, Spoil)> = vec![
        (
            "not JSON",
            Box::new(|l: &mut Vec<String>| l[7] = "{\"kind\":".into()),
        ),
        (
            "an unknown kind",
            Box::new(|l: &mut Vec<String>| l[7] = l[7].replacen("\"episode\"", "\"memo\"", 1)),
        ),
        (
            "another format",
            Box::new(|l: &mut Vec<String>| l[7] = l[7].replacen("\"format\":1", "\"format\":9", 1)),
        ),
        (
            "an invalid item",
            // An empty embedding parses but is not a valid item.
            Box::new(|l: &mut Vec<String>| {
                let at = l[7].find("\"embedding\":[").unwrap() + "\"embedding\":[".len();
                let end = at + l[7][at..].find(']').unwrap();
                l[7].replace_range(at..end, "");
            }),
        ),
    ];
    for (what, spoil) in cases {
        let mut bad = lines.clone();
        spoil(&mut bad);
        let file = dir.path().join("bad.jsonl");
        std::fs::write(&file, bad.join("\n") + "\n").unwrap();
        let target = dir.path().join(format!("{}.redb", what.replace(' ', "_")));
        let out = memory(&["--store", s(&target), "import", s(&file), "--batch", "5"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("line 8"), "{what}: {err}");
        assert!(err.contains("--from-line 6"), "{what}: {err}");
        // Lines 1-5 were one batch and are stored; line 8's batch (6-10) is not.
        let stats = ok(&["--store", s(&target), "stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
        assert_eq!(stats["episodes"], 5, "{what}");
    }

    // A file cut in the middle of its last line.
    lines.truncate(12);
    let mut cut = lines.join("\n");
    cut.truncate(cut.len() - 40);
    let file = dir.path().join("cut.jsonl");
    std::fs::write(&file, cut).unwrap();
    let target = dir.path().join("cut.redb");
    let out = memory(&["--store", s(&target), "import", s(&file), "--batch", "100"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 12"));
    let stats = ok(&["--store", s(&target), "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        stats["episodes"], 0,
        "the one batch held the bad line: nothing written"
    );
}

#[tokio::test]
async fn an_import_killed_half_way_and_run_again_leaves_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    filled(&source, 6_000).await;
    let file: PathBuf = dir.path().join("all.jsonl");
    let whole = export(&source, &file);

    let target = dir.path().join("target.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_memory"))
        .args(["--store", s(&target), "import", s(&file), "--batch", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some batches landed and before all did.
    let watcher = TursoStorage::open(TursoConfig::local(&target))
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let n = watcher.count_episodes().await.unwrap();
        if n > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the import never wrote"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = watcher.count_episodes().await.unwrap();
    assert!(
        partial < 6_000,
        "killed after it finished: make the file longer"
    );
    drop(watcher);

    ok(&["--store", s(&target), "import", s(&file)]);
    assert!(
        export(&target, &dir.path().join("again.jsonl")) == whole,
        "run again after a kill at {partial} episodes: the store differs"
    );
}

#[tokio::test]
async fn migrate_redb_libsql_and_sqld_and_back_keeps_every_item_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    filled(&source, 1_500).await;
    let original = export(&source, &dir.path().join("original.jsonl"));
    let server = memory_test_sqld::Sqld::start().await.unwrap();
    let redb = dir.path().join("hop.redb");
    let back = dir.path().join("back.db");
    let url = server.url();
    for (from, to) in [
        (s(&source), s(&redb)),
        (s(&redb), url.as_str()),
        (url.as_str(), s(&back)),
    ] {
        let out = ok(&["migrate", "--from", from, "--to", to]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("copied 1500 episodes, 30 patterns, 12 heuristics; verified"),
            "{said}"
        );
    }
    assert!(
        export(&back, &dir.path().join("back.jsonl")) == original,
        "the round trip changed an item"
    );

    // Into a store that is not empty: refused, nothing written.
    let out = memory(&["migrate", "--from", s(&source), "--to", s(&back)]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("migrate into an empty store"));
    let same = memory(&["migrate", "--from", s(&source), "--to", s(&source)]);
    assert_eq!(same.status.code(), Some(2));
}

#[tokio::test]
async fn prune_dry_run_and_real_run_agree() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("prune.db");
    filled(&store, 50).await;
    let json = |out: Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).unwrap() };
    let args = [
        "--store",
        s(&store),
        "prune",
        "--keep-newest",
        "3",
        "--json",
    ];
    let dry = json(ok(&[&args[..], &["--dry-run"]].concat()));
    assert_eq!(dry["removed"], 0);
    let selected = dry["selected"].as_u64().unwrap();
    assert!(selected > 0 && selected < 50, "{dry}");
    let real = json(ok(&[&args[..], &["--chunk", "4"]].concat()));
    assert_eq!(real["removed"].as_u64(), Some(selected), "{real}");
    let stats = json(ok(&["--store", s(&store), "stats", "--json"]));
    assert_eq!(stats["episodes"].as_u64(), Some(50 - selected));
    let again = json(ok(&[&args[..], &["--dry-run"]].concat()));
    assert_eq!(again["selected"], 0);

    let none = memory(&["--store", s(&store), "prune"]);
    assert_eq!(none.status.code(), Some(2), "a policy without a rule");
}

#[tokio::test]
async fn search_by_vector_text_and_both() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("search.db");
    filled(&store, 40).await;
    let json =
        |out: Output| -> Vec<serde_json::Value> { serde_json::from_slice(&out.stdout).unwrap() };
    let search = |extra: &[&str]| -> Vec<String> {
        ["--store", s(&store), "search"]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    let ok = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Episode i carries [1, i, 0.5]: episode 0 is the query itself, then 1, 2...
    let hits = json(ok(search(&[
        "--vector",
        "[1, 0, 0.5]",
        "-k",
        "3",
        "--json",
    ])));
    assert_eq!(hits.len(), 3);
    let want: Vec<String> = (0..3).map(|i| samples::episode(i).id.to_string()).collect();
    let got: Vec<&str> = hits
        .iter()
        .map(|h| h["item"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want, "nearest first");
    assert!((hits[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-6);

    // Sample episodes 2, 6, 10... end "half" done.
    let hits = json(ok(search(&["--text", "HALF", "-k", "50", "--json"])));
    assert_eq!(hits.len(), 10, "{hits:?}");
    assert!(hits.iter().all(|h| h["item"].to_string().contains("half")));

    let vector_file = dir.path().join("q.json");
    std::fs::write(&vector_file, "[1, 6, 0.5]").unwrap();
    let hits = json(ok(search(&[
        "--vector-file",
        s(&vector_file),
        "--text",
        "half",
        "--domain",
        &samples::episode(6).context.domain,
        "-k",
        "1",
        "--json",
    ])));
    assert_eq!(
        hits[0]["item"]["id"].as_str(),
        Some(samples::episode(6).id.to_string().as_str()),
        "first by vector and by text"
    );

    let patterns = json(ok(search(&[
        "--kind", "pattern", "--text", "timeout", "--json",
    ])));
    assert!(!patterns.is_empty());
    assert!(
        patterns
            .iter()
            .all(|h| h["item"].to_string().contains("timeout"))
    );

    // Words that would be FTS5 operators are only words.
    let hostile = ok(search(&["--text", "\"half\" OR NEAR(a b) * ^col:x"]));
    assert!(hostile.status.success());
    let human = ok(search(&["--text", "half", "-k", "2"]));
    assert_eq!(String::from_utf8_lossy(&human.stdout).lines().count(), 2);

    for bad in [
        search(&[]),
        search(&["--vector", "[1, 2]"]),
        search(&["--vector", "not json"]),
        search(&["--vector", "[1, 0, 0.5]", "-k", "0"]),
        search(&["--kind", "pattern", "--text", "x", "--tag", "t"]),
    ] {
        let out = memory(&bad.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn stats_names_the_layout_version_and_cache_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let libsql = dir.path().join("stats.db");
    filled(&libsql, 10).await;
    let json = |out: Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).unwrap() };
    let stats = json(ok(&["--store", s(&libsql), "stats", "--json"]));
    assert_eq!(
        stats["schema_version"].as_i64(),
        Some(memory_storage_turso::SCHEMA_VERSION),
        "{stats}"
    );
    assert_eq!(stats["episodes"].as_u64(), Some(10));
    assert!(stats["cache_defaults"]["budget_bytes"].as_u64().unwrap() > 0);
    let redb = dir.path().join("stats.redb");
    ok(&[
        "migrate",
        "--from",
        s(&libsql),
        "--to",
        &format!("redb:{}", s(&redb)),
    ]);
    let stats = json(ok(&[
        "--store",
        &format!("redb:{}", s(&redb)),
        "stats",
        "--json",
    ]));
    assert_eq!(
        stats["format_version"].as_u64(),
        Some(memory_storage_redb::FORMAT_VERSION),
        "{stats}"
    );
    let human = ok(&["--store", s(&libsql), "stats"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("schema version"), "{text}");
}

/// One scrape of `GET /metrics` at `addr`.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test]
async fn serve_metrics_exports_the_store_until_told_to_stop() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("served.db");
    filled(&store, 40).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_memory"))
        .args([
            "--store",
            s(&store),
            "serve-metrics",
            "--addr",
            "127.0.0.1:0",
            "--interval-secs",
            "1",
        ])
        .env_remove("MEMORY_STORE")
        .env_remove("TURSO_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("serving metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    // The contents are read before the address is printed.
    let body = scrape(&addr);
    for expected in [
        "\nmemory_store_up 1\n",
        "memory_store_items{kind=\"episode\"} 40",
        "memory_store_items{kind=\"pattern\"} 30",
        "memory_store_items{kind=\"heuristic\"} 12",
        &format!(
            "memory_store_layout_version {}",
            memory_storage_turso::SCHEMA_VERSION
        ),
        "memory_store_file_bytes ",
        "memory_pool_max_connections{store=\"memory\"}",
        "operation=\"count_episodes\"",
    ] {
        assert!(body.contains(expected), "{expected} missing from:\n{body}");
    }
    // A store that grows is seen at the next read.
    {
        let writer = TursoStorage::open(TursoConfig::local(&store))
            .await
            .unwrap();
        writer.store_episode(&samples::episode(500)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !scrape(&addr).contains("memory_store_items{kind=\"episode\"} 41") {
        assert!(Instant::now() < deadline, "the new episode never showed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "stopped by SIGTERM: {status:?}");
}

/// `memory check` reads every item: a sound store exits 0 with its counts; an episode and a
/// pattern whose payloads were damaged are named (exit status 1), the others still read.
#[tokio::test]
async fn check_names_the_items_that_do_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("checked.db");
    filled(&store, 450).await;
    let json = |out: Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).unwrap() };
    let sound = ok(&["--store", s(&store), "check", "--json"]);
    assert!(
        sound.stderr.is_empty(),
        "no progress is drawn when stderr is not a terminal: {:?}",
        String::from_utf8_lossy(&sound.stderr)
    );
    let sound = json(sound);
    assert_eq!(sound["checked"]["episodes"], 450, "{sound}");
    assert_eq!(sound["checked"]["patterns"], 30);
    assert_eq!(sound["checked"]["heuristics"], 12);
    assert_eq!(sound["problems"].as_array().map(Vec::len), Some(0));

    let (episode, pattern) = (samples::episode(321).id, samples::pattern(7).id);
    {
        let db = libsql::Builder::new_local(&store).build().await.unwrap();
        let conn = db.connect().unwrap();
        conn.execute(
            "UPDATE episodes SET payload = x'ff0013' WHERE id = ?1",
            [episode.as_bytes().to_vec()],
        )
        .await
        .unwrap();
        conn.execute(
            "UPDATE patterns SET encoding = 77 WHERE id = ?1",
            [pattern.as_bytes().to_vec()],
        )
        .await
        .unwrap();
    }
    let out = memory(&["--store", s(&store), "check", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a damaged store fails the check"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["checked"]["episodes"], 450,
        "the check went past them"
    );
    let problems: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        vec![
            ("episode".to_string(), episode.to_string()),
            ("pattern".to_string(), pattern.to_string())
        ]
    );
    let human = memory(&["--store", s(&store), "check"]);
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&format!("episode {episode}")), "{text}");
    assert!(text.contains("2 do not decode"), "{text}");
}

/// Chunks are sized by time: with a short `--chunk-ms` a delete holds few typical
/// episodes, with a long one the chunks grow (doubling from 8) up to `--chunk`.
#[tokio::test]
async fn prune_sizes_its_chunks_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let json = |out: Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).unwrap() };
    let mut largest = Vec::new();
    for chunk_ms in ["1", "60000"] {
        let path = dir.path().join(format!("chunks-{chunk_ms}.db"));
        {
            let store = TursoStorage::open(TursoConfig::local(&path)).await.unwrap();
            let all: Vec<_> = (0..600)
                .map(memory_core::testing::typical::typical_episode)
                .collect();
            store.store_episodes(&all).await.unwrap();
        }
        let args = [
            "--store",
            s(&path),
            "prune",
            "--keep-newest",
            "0",
            "--chunk",
            "1000",
            "--chunk-ms",
            chunk_ms,
            "--json",
        ];
        let report = json(ok(&args));
        assert_eq!(report["removed"].as_u64(), Some(600), "{report}");
        largest.push(report["largest_chunk"].as_u64().unwrap());
    }
    // Deleting a typical episode takes well over 10 µs, so 1 ms never admits 100.
    assert!(largest[0] < 100, "1 ms chunks held up to {}", largest[0]);
    assert!(
        largest[1] >= 128,
        "60 s chunks held only up to {}",
        largest[1]
    );
}

#[test]
fn the_auth_token_is_never_printed() {
    let secret = "token-that-must-not-leak-7f3a";
    let out = Command::new(env!("CARGO_BIN_EXE_memory"))
        .args(["--store", "http://127.0.0.1:1", "stats"])
        .env("TURSO_AUTH_TOKEN", secret)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "an unreachable server: {all}");
    assert!(
        all.contains("127.0.0.1:1"),
        "the error names the server: {all}"
    );
    assert!(!all.contains(secret), "the token leaked: {all}");
}
