//! `memory-bench`: the dashboard run of the episodic-memory store.
//!
//! ```sh
//! memory-bench run                  # embedded default: a local libSQL file, cached
//! memory-bench run --quick          # under a minute
//! memory-bench run --url http://127.0.0.1:8080   # a sqld/Turso server (or TURSO_DATABASE_URL)
//! memory-bench run --save-baseline main
//! memory-bench run --baseline main  # compare with a saved run
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use memory_bench::report;
use memory_bench::run::{RunOptions, RunResult, standard_run};
use memory_storage_turso::{TOKEN_ENV, TursoConfig, URL_ENV};

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
    /// Where the JSON result, the markdown report and baselines go.
    #[arg(long, default_value = "target/memory-bench")]
    out: PathBuf,
    /// Also store this run as baseline NAME.
    #[arg(long, value_name = "NAME")]
    save_baseline: Option<String>,
    /// Compare this run with baseline NAME.
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
    options.progress = !args.no_progress;
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
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = serde_json::to_string_pretty(&result)?;
    std::fs::write(args.out.join("run.json"), &json)?;
    std::fs::write(args.out.join("report.md"), &dashboard)?;
    println!(
        "Wrote {} and {}",
        args.out.join("run.json").display(),
        args.out.join("report.md").display()
    );
    if let Some(name) = &args.save_baseline {
        let path = baseline_path(&args.out, name)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &json)?;
        println!("Saved baseline {name} to {}", path.display());
    }
    if let Some(name) = &args.baseline {
        let path = baseline_path(&args.out, name)?;
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("memory-bench: starting a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("memory-bench: a dashboard bar failed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("memory-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
