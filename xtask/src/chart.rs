//! `cargo xtask chart FILE... [--out DIR]`: SVG charts of bench results for BENCHMARKS.md.
//!
//! Input: JSON lines as `cargo xtask bench --json-out FILE` appends them. For each depth in
//! the input, two grouped bar charts: req/s and p99 per mode, one bar per configuration
//! (`toml`, `legacy conf`, `direct`...), each bar the median of that cell's runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::prelude::*;
use serde::Deserialize;

use crate::common::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON-lines files written by `cargo xtask bench --json-out`.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Where the SVG files go.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
}

/// The part of a bench report the charts use.
#[derive(Debug, Deserialize)]
struct Run {
    mode: String,
    #[serde(default = "unknown_config")]
    config: String,
    depth: u32,
    req_per_s: f64,
    p99_ms: f64,
    /// `bench --population`: runs on a built population get a bar of their own.
    #[serde(default)]
    population: Option<String>,
}

impl Run {
    /// The bar a run belongs to: its configuration, and its population when it has one.
    fn series(&self) -> String {
        match &self.population {
            Some(p) => format!("{} {}", self.config, p.trim_start_matches("dbproxy_")),
            None => self.config.clone(),
        }
    }
}

fn unknown_config() -> String {
    "toml".into()
}

/// The order modes appear in, left to right.
const MODES: [&str; 11] = [
    "login",
    "send",
    "fetch",
    "unread",
    "mix",
    "sessions",
    "group-list",
    "group-info",
    "by-ids",
    "read-unread",
    "ceiling",
];

const COLOURS: [RGBColor; 4] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0x81, 0x72, 0xb3),
];

pub fn run(args: &Args) -> Result<ExitCode> {
    let mut runs = Vec::new();
    for path in &args.inputs {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let run: Run = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: not a bench report: {e}", path.display(), n + 1))?;
            runs.push(run);
        }
    }
    if runs.is_empty() {
        return Err("no bench reports in the input".into());
    }
    std::fs::create_dir_all(&args.out)?;
    let mut depths: Vec<u32> = runs.iter().map(|r| r.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    for depth in depths {
        let at: Vec<&Run> = runs.iter().filter(|r| r.depth == depth).collect();
        for (metric, unit, value) in [
            (
                "req_per_s",
                "req/s",
                (|r: &Run| r.req_per_s) as fn(&Run) -> f64,
            ),
            ("p99_ms", "p99 ms", |r: &Run| r.p99_ms),
        ] {
            let file = args.out.join(format!("{metric}_depth{depth}.svg"));
            let title = format!("{unit} per mode, 8 connections, depth {depth}");
            grouped_bars(&file, &title, unit, &cells(&at, value))?;
            println!("chart: {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// mode -> config -> median value.
type Cells = BTreeMap<usize, BTreeMap<String, f64>>;

fn cells(runs: &[&Run], value: fn(&Run) -> f64) -> Cells {
    let mut raw: BTreeMap<usize, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for r in runs {
        let Some(m) = MODES.iter().position(|&m| m == r.mode) else {
            continue;
        };
        raw.entry(m)
            .or_default()
            .entry(r.series())
            .or_default()
            .push(value(r));
    }
    raw.into_iter()
        .map(|(m, by_config)| {
            let medians = by_config
                .into_iter()
                .map(|(c, mut v)| {
                    v.sort_by(f64::total_cmp);
                    (c, v[v.len() / 2])
                })
                .collect();
            (m, medians)
        })
        .collect()
}

fn grouped_bars(file: &Path, title: &str, unit: &str, cells: &Cells) -> Result<()> {
    let mut configs: Vec<&String> = cells.values().flat_map(|c| c.keys()).collect();
    configs.sort();
    configs.dedup();
    let modes: Vec<usize> = cells.keys().copied().collect();
    let top = cells
        .values()
        .flat_map(|c| c.values())
        .fold(0.0f64, |a, &b| a.max(b))
        * 1.15;
    let root = SVGBackend::new(file, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..modes.len() as f64, 0f64..top.max(1.0))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        // Key points every half unit: name a mode at its group's centre, nothing elsewhere.
        .x_labels(modes.len() * 2 + 1)
        .x_label_formatter(&|x| {
            if (x.fract() - 0.5).abs() > 0.01 {
                return String::new();
            }
            modes
                .get(x.floor() as usize)
                .map_or(String::new(), |&m| MODES[m].to_string())
        })
        .y_label_formatter(&|v| {
            if top > 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .y_desc(unit)
        .draw()
        .map_err(|e| e.to_string())?;
    let width = 0.8 / configs.len().max(1) as f64;
    for (ci, config) in configs.iter().enumerate() {
        let colour = COLOURS[ci % COLOURS.len()];
        let bars = modes.iter().enumerate().filter_map(|(i, m)| {
            let v = *cells.get(m)?.get(*config)?;
            let x0 = i as f64 + 0.1 + ci as f64 * width;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, v)],
                colour.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(config.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: &str, config: &str, req_per_s: f64) -> Run {
        Run {
            mode: mode.into(),
            config: config.into(),
            depth: 16,
            req_per_s,
            p99_ms: 1.0,
            population: None,
        }
    }

    #[test]
    fn cells_take_the_median_per_mode_and_config() {
        let runs = [
            run("send", "toml", 3.0),
            run("send", "toml", 1.0),
            run("send", "toml", 2.0),
            run("login", "legacy conf", 9.0),
            run("nonsense", "toml", 5.0),
        ];
        let refs: Vec<&Run> = runs.iter().collect();
        let c = cells(&refs, |r| r.req_per_s);
        assert_eq!(c[&1]["toml"], 2.0, "median of send");
        assert_eq!(c[&0]["legacy conf"], 9.0);
        assert_eq!(c.len(), 2, "unknown modes are left out");
        let mut large = run("unread", "legacy conf", 4.0);
        large.population = Some("dbproxy_pop_large".into());
        let refs = [&large];
        let c = cells(&refs, |r| r.req_per_s);
        assert_eq!(
            c[&3]["legacy conf pop_large"], 4.0,
            "a population has its own bar"
        );
    }

    #[test]
    fn a_chart_names_its_modes_and_configurations() {
        let runs = [run("send", "toml", 10.0), run("mix", "legacy conf", 20.0)];
        let refs: Vec<&Run> = runs.iter().collect();
        let dir = std::env::temp_dir().join(format!("xtask-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.svg");
        grouped_bars(&file, "title here", "req/s", &cells(&refs, |r| r.req_per_s)).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        for text in ["title here", "send", "mix", "toml", "legacy conf", "<rect"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
