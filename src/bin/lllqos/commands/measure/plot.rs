//! `lllqos measure --plot FILE.svg`: both phases' latency histograms on one chart, for a browser.
//!
//! plotters draws it with its SVG backend, which needs no system fonts (text is left to the
//! browser). The count axis is logarithmic, since the tail that matters is a few samples against
//! thousands; each phase's p99 is marked with a dashed line of its colour, and the caption names
//! the request.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use lllqos::internal::oserror::os_message;

use super::report::{Histograms, Report, describe_request};

/// The chart's file: opened before anything is measured, so that a path that cannot be written is
/// an error then, not after the phases; written only once there is a chart. A measurement that
/// fails (or is refused, say SCHED_FIFO) leaves no file it created, and a file that was there
/// as it was.
pub struct PlotFile {
    path: PathBuf,
    file: File,
    created: bool,
    written: bool,
}

impl PlotFile {
    /// Opens `path` for writing, creating it when it does not exist; truncates nothing yet.
    pub fn open(path: &Path) -> Result<PlotFile> {
        let failed = |e: std::io::Error| anyhow!("--plot {}: {}", path.display(), os_message(&e));
        let (file, created) = match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (
                OpenOptions::new().write(true).open(path).map_err(failed)?,
                false,
            ),
            Err(e) => return Err(failed(e)),
        };
        Ok(PlotFile {
            path: path.to_owned(),
            file,
            created,
            written: false,
        })
    }

    /// The path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content with the chart.
    pub fn write(mut self, svg: &str) -> Result<()> {
        let failed =
            |e: std::io::Error| anyhow!("--plot {}: {}", self.path.display(), os_message(&e));
        self.file.set_len(0).map_err(failed)?;
        self.file.write_all(svg.as_bytes()).map_err(failed)?;
        self.written = true;
        Ok(())
    }
}

impl Drop for PlotFile {
    fn drop(&mut self) {
        if self.created && !self.written {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

const WITHOUT: RGBColor = RGBColor(200, 60, 40);
const WITH: RGBColor = RGBColor(30, 90, 200);

/// The chart as SVG text.
///
/// Honest to the data: each 1 us bucket that has samples is drawn as its own step, from the
/// bottom of the count axis (which starts below 1, so that a single sample shows) to its count,
/// and an empty bucket is left empty. The x axis ends a little past the larger p99 so that the
/// bulk stays readable; what lies beyond it is not hidden: the legend says, per phase, how many
/// samples are past the axis and the largest one.
pub fn svg(report: &Report, histograms: &Histograms) -> Result<String> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw the chart: {e}");
    let all = || histograms.without.iter().chain(&histograms.with);
    let largest = all().map(|&(us, _)| us).max().unwrap_or(1);
    let p99 = report.without.stats.p99_us.max(report.with.stats.p99_us);
    let x_end = x_axis_end(largest, p99);
    let y_end = (all().map(|&(_, n)| n).max().unwrap_or(1) * 2).max(2) as f64;
    let s = &report.settings;
    let request = describe_request(s);
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("lllqos measure: wake-up latency without and with {request}"),
                ("sans-serif", 18),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0u64..x_end, (BOTTOM..y_end).log_scale())
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("wake-up latency (us), 1 us buckets")
            .y_desc("samples")
            .y_label_formatter(&|n| {
                if *n < 1.0 {
                    String::new()
                } else {
                    format!("{n}")
                }
            })
            .draw()
            .map_err(|e| fail(&e))?;
        for (name, counts, stats, colour) in [
            (
                "without",
                &histograms.without,
                &report.without.stats,
                WITHOUT,
            ),
            ("with", &histograms.with, &report.with.stats, WITH),
        ] {
            let steps = (counts.iter())
                .filter(|&&(us, n)| us < x_end && n > 0)
                .map(|&(us, n)| {
                    let n = n as f64;
                    PathElement::new(
                        vec![(us, BOTTOM), (us, n), (us + 1, n), (us + 1, BOTTOM)],
                        colour.stroke_width(2),
                    )
                });
            let past = beyond(counts, x_end);
            let label = if past == 0 {
                format!("{name}: p99 {} us, max {} us", stats.p99_us, stats.max_us)
            } else {
                format!(
                    "{name}: p99 {} us; {past} sample(s) past {x_end} us, max {} us",
                    stats.p99_us, stats.max_us
                )
            };
            chart
                .draw_series(steps)
                .map_err(|e| fail(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            if stats.p99_us < x_end {
                let marker = DashedLineSeries::new(
                    [(stats.p99_us, BOTTOM), (stats.p99_us, y_end)],
                    6,
                    4,
                    colour.into(),
                );
                chart.draw_series(marker).map_err(|e| fail(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(text)
}

/// The bottom of the count axis: below 1, so that a bucket of one sample is a visible step.
const BOTTOM: f64 = 0.5;

/// Where the x axis ends (exclusive): a little past the larger p99, at least 20 us, or just past
/// the largest sample when that comes first.
fn x_axis_end(largest: u64, p99: u64) -> u64 {
    largest.min((p99 * 3).max(20)).max(1) + 1
}

/// How many samples of `counts` (`[us, n]` buckets) lie at or past `x_end`.
fn beyond(counts: &[(u64, u64)], x_end: u64) -> u64 {
    (counts.iter())
        .filter(|&&(us, _)| us >= x_end)
        .map(|&(_, n)| n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_ends_past_the_p99_or_at_the_largest_sample() {
        assert_eq!(x_axis_end(2730, 60), 181);
        assert_eq!(x_axis_end(12, 10), 13);
        assert_eq!(x_axis_end(500, 2), 21);
    }

    #[test]
    fn samples_past_the_axis_are_counted() {
        let counts = [(5, 100), (180, 2), (181, 1), (2730, 1), (10_000, 3)];
        assert_eq!(beyond(&counts, 181), 5);
        assert_eq!(beyond(&counts, 20_000), 0);
    }
}
