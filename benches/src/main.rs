//! `memory-bench`: the dashboard run of the episodic-memory store.
//!
//! ```sh
//! memory-bench run                  # embedded default: a local libSQL file, cached
//! memory-bench run --quick          # under a minute
//! memory-bench run --url http://127.0.0.1:8080   # a sqld/Turso server (or TURSO_DATABASE_URL)
//! memory-bench run --save-baseline main
//! memory-bench run --baseline main  # compare with a saved run
//! memory-bench gate --save-baseline main   # measure the gate's figures, keep them
//! memory-bench gate --baseline main        # measure again; exit 1 on a regression
//! memory-bench figures --commit REV        # render docs/FIGURES.md (scripts/figures.sh)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use memory_bench::feed::{FeedOptions, feed};
use memory_bench::instructions::{HotPath, run_hot_path};
use memory_bench::measure::{self, GateOptions, Measurement, Weakening};
use memory_bench::run::{RunOptions, RunResult, standard_run};
use memory_bench::search::{SearchOptions, search};
use memory_bench::soak::{SoakOptions, soak};
use memory_bench::{plots, report};
use memory_storage_turso::{TOKEN_ENV, TursoConfig, URL_ENV};

// Counts the bytes live on the heap, so that the dashboard can report the caches' real
// memory (what dropping them frees) beside what their weighers account.
#[global_allocator]
static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

fn heap_bytes() -> u64 {
    HEAP.allocated() as u64
}

#[derive(Parser)]
#[command(
    name = "memory-bench",
    about = "Benchmarks of the episodic-memory store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Loads the standard data set, runs the standard agent-session workload through the
    /// cached store and prints the dashboard (exit status 1 if a bar fails).
    Run(RunArgs),
    /// Measures the regression gate's figures (deterministic ones from a quick run, timing
    /// ratios to raw libsql repeated) and compares them with a saved baseline: exit status
    /// 1 on a regression or when the run was too noisy to tell.
    Gate(GateArgs),
    /// The soak test: many concurrent tasks mix reads, queries, single and batch writes
    /// through the cached libSQL store on a local file, then a fresh store must hold
    /// exactly the acknowledged writes. Exit status 1 if anything was lost, stale or failed.
    Soak {
        /// Seconds of mixed workload.
        #[arg(long, default_value_t = 180)]
        secs: u64,
        /// Concurrent tasks.
        #[arg(long, default_value_t = 32)]
        tasks: usize,
        /// Seed of the tasks' choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Renders every figure the documentation quotes (docs/FIGURES.md) from the folder
    /// `scripts/figures.sh` filled: the dashboard run, the gate's measurement, the benches'
    /// printed output and criterion's results. Measures nothing itself.
    Figures {
        /// The folder with `run/run.json`, `gate/gate.json` and `bench.log`.
        #[arg(long, default_value = "target/figures")]
        from: PathBuf,
        /// Criterion's results folder.
        #[arg(long, default_value = "target/criterion")]
        criterion: PathBuf,
        /// The commit the figures were measured at (for the page's heading).
        #[arg(long)]
        commit: String,
    },
    /// Tail latencies: single writes on a local file, and a single task's cached gets with
    /// the change check on (local file and sqld on loopback; needs SQLD_BIN or sqld).
    Tails {
        /// Single updates timed.
        #[arg(long, default_value_t = 1_000)]
        writes: u64,
        /// Seconds of cached gets per location.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// The change feed with other writers in other processes: a reader's hit ratio beside
    /// a writer at 1, 20 and 200 writes/s; 2 and 4 processes sharing a file and a sqld
    /// (throughput, hit ratio, largest staleness); the feed's cost. Exit status 1 if a
    /// target fails. The sqld runs need SQLD_BIN or sqld.
    Feed {
        /// The short version: 2 s phases, 20/s only, 2 processes on a file, no sqld.
        #[arg(long)]
        quick: bool,
        /// Seconds per phase (default 10; 2 with --quick).
        #[arg(long)]
        secs: Option<f64>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Similarity search on a local file (100,000 episodes with 384-value embeddings):
    /// insert cost with and without embeddings, file size per vector, top-10 latency and
    /// recall@10 through the vector index and by an exact scan, with and without a domain
    /// filter; then on a sqld on loopback with round trips per search. Exit status 1 if a
    /// target fails. The sqld run needs SQLD_BIN or sqld.
    Search {
        /// The short version: 3,000 episodes of 64 values, no sqld, targets not enforced.
        #[arg(long)]
        quick: bool,
        /// Episodes stored (default 100,000; 3,000 with --quick).
        #[arg(long)]
        items: Option<usize>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The `memory` command's export and import (items/s, heap peak) on typical episodes
    /// in a local file, at two sizes, and retention's delete chunks. Exit status 1 if a
    /// target fails.
    Lifecycle {
        /// Episodes in the larger store (the smaller holds a quarter).
        #[arg(long, default_value_t = 100_000)]
        items: usize,
    },
    /// A process `feed` starts.
    #[command(hide = true, subcommand)]
    FeedChild(FeedChild),
    /// Runs one CPU-bound hot path OPS times: the gate runs this under callgrind.
    #[command(hide = true)]
    HotPath {
        /// The path.
        #[arg(value_enum)]
        path: HotPath,
        /// Operations to run after the set-up.
        #[arg(long)]
        ops: u64,
        /// The configuration under test.
        #[arg(long, value_enum, default_value_t = Weakening::None)]
        weaken: Weakening,
    },
}

#[derive(Subcommand)]
enum FeedChild {
    /// Writes other episodes at a rate.
    Writer {
        #[arg(long)]
        target: String,
        #[arg(long)]
        rate: u32,
        #[arg(long)]
        secs: f64,
    },
    /// One of several processes sharing a store.
    Peer {
        #[arg(long)]
        target: String,
        #[arg(long)]
        peer: u32,
        #[arg(long)]
        peers: u32,
        #[arg(long)]
        secs: f64,
        #[arg(long)]
        logs: PathBuf,
    },
}

#[derive(clap::Args)]
struct GateArgs {
    /// Timing repetitions.
    #[arg(long, default_value_t = GateOptions::default().reps)]
    reps: usize,
    /// Measure a deliberately weakened configuration (to check that the gate catches it).
    #[arg(long, value_enum, default_value_t = Weakening::None)]
    weaken: Weakening,
    #[command(flatten)]
    output: Output,
}

#[derive(clap::Args)]
struct RunArgs {
    /// A smaller data set and workload that finish in under a minute.
    #[arg(long)]
    quick: bool,
    /// Run against this libSQL server (sqld or Turso; token from TURSO_AUTH_TOKEN) instead
    /// of a local file. Without it, TURSO_DATABASE_URL is used when set.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    output: Output,
}

/// Where results go, and the baselines to keep or compare with (`run` and `gate` keep
/// theirs apart).
#[derive(clap::Args)]
struct Output {
    /// Where results, reports, plots and baselines go.
    #[arg(long, default_value = "target/memory-bench")]
    out: PathBuf,
    /// Also store this result as baseline NAME.
    #[arg(long, value_name = "NAME")]
    save_baseline: Option<String>,
    /// Compare this result with baseline NAME.
    #[arg(long, value_name = "NAME")]
    baseline: Option<String>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

fn baseline_path(out: &Path, name: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "a baseline name is letters, digits, '-' and '_' (got {name:?})"
    );
    Ok(out.join("baselines").join(format!("{name}.json")))
}

async fn gate(args: GateArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        (3..=1_000).contains(&args.reps),
        "--reps must be between 3 and 1000 (got {})",
        args.reps
    );
    // Check the names before spending a minute measuring.
    let save = match &args.output.save_baseline {
        Some(name) => Some(baseline_path(&args.output.out, &format!("gate-{name}"))?),
        None => None,
    };
    let base = match &args.output.baseline {
        Some(name) => {
            let path = baseline_path(&args.output.out, &format!("gate-{name}"))?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading gate baseline {name} at {}", path.display()))?;
            let base: Measurement = serde_json::from_str(&text).with_context(|| {
                format!(
                    "gate baseline {name} at {} is not a measurement",
                    path.display()
                )
            })?;
            Some(base)
        }
        None => None,
    };
    let options = GateOptions {
        reps: args.reps,
        weaken: args.weaken,
        ..GateOptions::default()
    };
    let now = measure::measure(&options, !args.output.no_progress).await?;
    let json = serde_json::to_string_pretty(&now)?;
    std::fs::create_dir_all(&args.output.out)
        .with_context(|| format!("creating {}", args.output.out.display()))?;
    std::fs::write(args.output.out.join("gate.json"), &json)?;
    if let Some(path) = save {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &json)?;
        println!("Saved the gate's measurement to {}", path.display());
    }
    let Some(base) = base else {
        println!("{}", measure::figures(&now));
        return Ok(true);
    };
    let comparisons = measure::compare(&base, &now);
    let table = measure::markdown(&comparisons);
    println!("{table}");
    std::fs::write(args.output.out.join("gate.md"), &table)?;
    if base.cores != now.cores {
        println!(
            "note: the baseline ran on {} cores, this run on {}",
            base.cores, now.cores
        );
    }
    Ok(measure::passes(&comparisons))
}

fn compare(run: &RunResult, base: &RunResult) -> String {
    let line = |name: &str, now: f64, then: f64| {
        let ratio = if then == 0.0 { f64::NAN } else { now / then };
        format!("| {name} | {then:.4} | {now:.4} | {ratio:.3} |\n")
    };
    let mut out =
        String::from("| figure | baseline | this run | ratio |\n| --- | --- | --- | --- |\n");
    out += &line(
        "episode hit ratio",
        run.episode_hit_ratio,
        base.episode_hit_ratio,
    );
    out += &line("query hit ratio", run.query_hit_ratio, base.query_hit_ratio);
    out += &line("query p50 µs", run.query.p50_us, base.query.p50_us);
    out += &line("query p99 µs", run.query.p99_us, base.query.p99_us);
    out += &line("get p50 µs", run.get.p50_us, base.get.p50_us);
    if let (Some(now), Some(then)) = (&run.cached_get, &base.cached_get) {
        out += &line("cached get p50 µs", now.p50_us, then.p50_us);
        out += &line("cached get p99 µs", now.p99_us, then.p99_us);
    }
    out += &line(
        "bulk insert /s",
        run.bulk_insert_per_sec,
        base.bulk_insert_per_sec,
    );
    out += &line(
        "statement hit ratio",
        run.statement_hit_ratio,
        base.statement_hit_ratio,
    );
    out
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let mut options = if args.quick {
        RunOptions::quick()
    } else {
        RunOptions::standard()
    };
    options.progress = !args.output.no_progress;
    options.heap_bytes = Some(heap_bytes);
    options.writer_exe = Some(std::env::current_exe().context("finding memory-bench itself")?);
    options.search = Some(if args.quick {
        memory_bench::search::SearchOptions::quick()
    } else {
        memory_bench::search::SearchOptions::dashboard()
    });
    options.remote = match (&args.url, std::env::var(URL_ENV).ok()) {
        (Some(url), _) => Some(TursoConfig::from_vars(
            Some(url),
            std::env::var(TOKEN_ENV).ok().as_deref(),
        )?),
        (None, Some(_)) => Some(TursoConfig::from_env()?),
        (None, None) => None,
    };
    let result = standard_run(&options).await?;
    let dashboard = format!(
        "{}\n{}",
        report::markdown(&result),
        report::raw_markdown(&result)
    );
    println!("{dashboard}");
    std::fs::create_dir_all(&args.output.out)
        .with_context(|| format!("creating {}", args.output.out.display()))?;
    let json = serde_json::to_string_pretty(&result)?;
    std::fs::write(args.output.out.join("run.json"), &json)?;
    std::fs::write(args.output.out.join("report.md"), &dashboard)?;
    let mut written = vec![
        args.output.out.join("run.json"),
        args.output.out.join("report.md"),
    ];
    if !result.hit_ratio_curve.is_empty() {
        let measured = Some((result.episode_budget_share, result.episode_hit_ratio))
            .filter(|(share, _)| *share < 1.0);
        let path = args.output.out.join("hit-ratio-by-cache-size.svg");
        std::fs::write(
            &path,
            plots::hit_ratio_svg(&result.hit_ratio_curve, measured)?,
        )?;
        written.push(path);
    }
    if let Some(raw) = result.raw.as_ref().filter(|r| !r.distribution.is_empty()) {
        let path = args.output.out.join("get-latency-cached-vs-uncached.svg");
        std::fs::write(&path, plots::latency_svg(&raw.distribution)?)?;
        written.push(path);
    }
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("Wrote {}", names.join(", "));
    if let Some(name) = &args.output.save_baseline {
        let path = baseline_path(&args.output.out, name)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &json)?;
        println!("Saved baseline {name} to {}", path.display());
    }
    if let Some(name) = &args.output.baseline {
        let path = baseline_path(&args.output.out, name)?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading baseline {name} at {}", path.display()))?;
        let base: RunResult = serde_json::from_str(&text).with_context(|| {
            format!("baseline {name} at {} is not a run result", path.display())
        })?;
        println!("\nAgainst baseline {name}:\n\n{}", compare(&result, &base));
    }
    Ok(report::all_pass(&result))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread for a hot path, so that callgrind counts the same work every time.
    let runtime = match &cli.command {
        Command::HotPath { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("memory-bench: starting a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let failure = match cli.command {
        Command::Gate(_) => "the gate found a regression (or could not tell)",
        Command::Soak { .. } => "the soak failed",
        Command::Tails { .. } => "a tail measurement failed",
        Command::Feed { .. } => "a change-feed target failed",
        Command::Search { .. } => "a similarity-search target failed",
        Command::Lifecycle { .. } => "an export, import or retention target failed",
        Command::FeedChild(_) => "a change-feed child process failed",
        _ => "a dashboard bar failed",
    };
    let outcome = match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Gate(args) => runtime.block_on(gate(args)),
        Command::Soak { secs, tasks, seed } => runtime.block_on(async {
            let options = SoakOptions {
                duration: std::time::Duration::from_secs(secs),
                tasks,
                seed,
            };
            let report = soak(&options).await?;
            print!("{report}");
            Ok(true)
        }),
        Command::Figures {
            from,
            criterion,
            commit,
        } => memory_bench::figures::page(&from, &criterion, &commit).map(|page| {
            print!("{page}");
            true
        }),
        Command::Tails { writes, secs } => runtime.block_on(async {
            for tail in memory_bench::tails::tails(writes, secs).await? {
                println!("{tail}");
            }
            Ok(true)
        }),
        Command::Feed { quick, secs, json } => runtime.block_on(async {
            let mut options = if quick {
                FeedOptions::quick()
            } else {
                FeedOptions::full()
            };
            if let Some(secs) = secs {
                options.secs = secs;
            }
            let report = feed(&options).await?;
            print!("{report}");
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(report.passes())
        }),
        Command::Search { quick, items, json } => runtime.block_on(async {
            let mut options = if quick {
                SearchOptions::quick()
            } else {
                SearchOptions::full()
            };
            if let Some(items) = items {
                options.items = items;
            }
            let report = search(&options).await?;
            print!("{report}");
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(report.passes())
        }),
        Command::Lifecycle { items } => runtime.block_on(async {
            let report = memory_bench::lifecycle::lifecycle(items, heap_bytes).await?;
            print!("{report}");
            Ok(report.passes())
        }),
        Command::FeedChild(FeedChild::Writer { target, rate, secs }) => runtime
            .block_on(memory_bench::feed::writer_child(&target, rate, secs))
            .map(|()| true),
        Command::FeedChild(FeedChild::Peer {
            target,
            peer,
            peers,
            secs,
            logs,
        }) => runtime
            .block_on(memory_bench::feed::peer_child(
                &target, peer, peers, secs, &logs,
            ))
            .map(|()| true),
        Command::HotPath { path, ops, weaken } => runtime
            .block_on(run_hot_path(path, ops, weaken))
            .map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("memory-bench: {failure}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("memory-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
