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

use crate::oserror::os_message;

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

use crate::measure::{Histograms, Report};

const WITHOUT: RGBColor = RGBColor(200, 60, 40);
const WITH: RGBColor = RGBColor(30, 90, 200);

/// The chart as SVG text.
pub fn svg(report: &Report, histograms: &Histograms) -> Result<String> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw the chart: {e}");
    let all = || histograms.without.iter().chain(&histograms.with);
    // The x axis ends a little past the larger p99's, or at the largest sample when that is
    // small: the bulk and the tail both stay readable.
    let largest = all().map(|&(us, _)| us).max().unwrap_or(1);
    let p99 = report.without.stats.p99_us.max(report.with.stats.p99_us);
    let x_end = largest.min((p99 * 3).max(20)).max(1) + 1;
    let y_end = (all().map(|&(_, n)| n).max().unwrap_or(1) * 2).max(2);
    let s = &report.settings;
    let request = crate::measure::describe_request(s);
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
            .build_cartesian_2d(0u64..x_end, (1u64..y_end).log_scale())
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("wake-up latency (us)")
            .y_desc("samples")
            .draw()
            .map_err(|e| fail(&e))?;
        for (name, counts, p99, colour) in [
            (
                "without",
                &histograms.without,
                report.without.stats.p99_us,
                WITHOUT,
            ),
            ("with", &histograms.with, report.with.stats.p99_us, WITH),
        ] {
            // Steps: each 1 us bucket is a flat segment, so sparse tails stay visible.
            let points = counts
                .iter()
                .filter(|&&(us, _)| us < x_end)
                .flat_map(|&(us, n)| [(us, n), (us + 1, n)]);
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(format!("{name} (p99 {p99} us)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            if p99 < x_end {
                let marker = DashedLineSeries::new([(p99, 1), (p99, y_end)], 6, 4, colour.into());
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
