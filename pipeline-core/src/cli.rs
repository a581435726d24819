//! The command line of a pipeline binary (`daily list`, `daily graph`, ...). A binary's `main`
//! is `pipeline_core::main!();`, which calls [`main`].

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::dag::{Dag, GraphFormat};

/// Exit code for usage and configuration errors (clap uses the same for bad arguments).
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    about = "Run and inspect this pipeline",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the tasks: name, dependencies, description.
    List,
    /// Print the task graph for Graphviz (dot) or Mermaid.
    Graph {
        /// `dot` or `mermaid`.
        #[arg(long, default_value = "dot")]
        format: GraphFormat,
    },
}

/// Parses the command line and runs the command; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List => with_dag(list),
        Command::Graph { format } => with_dag(|dag| {
            print!("{}", dag.render(format));
            Ok(())
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn with_dag(command: impl FnOnce(&Dag) -> anyhow::Result<()>) -> anyhow::Result<ExitCode> {
    let dag = Dag::from_registry()?;
    command(&dag)?;
    Ok(ExitCode::SUCCESS)
}

fn list(dag: &Dag) -> anyhow::Result<()> {
    let names = |ids: &[crate::dag::TaskId]| -> String {
        if ids.is_empty() {
            "-".to_string()
        } else {
            ids.iter()
                .map(|&id| dag.task(id).name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let rows: Vec<[String; 4]> = dag
        .tasks()
        .map(|(_, task)| {
            let mut name = task.name.clone();
            if !task.policy.critical {
                name.push_str(" (non-critical)");
            }
            let summary = task.description.lines().next().unwrap_or("").to_string();
            [name, names(&task.requires), names(&task.after), summary]
        })
        .collect();
    let header = ["TASK", "REQUIRES", "AFTER", "DESCRIPTION"].map(String::from);
    print_table(&header, &rows)
}

/// Left-aligned columns, the last one unpadded.
pub(crate) fn print_table<const N: usize>(
    header: &[String; N],
    rows: &[[String; N]],
) -> anyhow::Result<()> {
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
