//! The progress line of a measurement, on stderr and only on a terminal: which phase, and how long
//! is left. Off a terminal (a pipe, a log) nothing is drawn.

use std::io::IsTerminal;
use std::time::Duration;

/// The progress line on stderr, only on a terminal.
#[derive(Debug)]
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn new(phase: Duration) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(2 * phase.as_millis() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg:48} [{bar:30}]") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("phase 1/2, without the request");
        Progress(Some(bar))
    }

    pub fn update(&self, phase: u8, left: Duration) {
        if let Some(bar) = &self.0 {
            let len = bar.length().unwrap_or(0);
            let done = len / 2 * u64::from(phase) - (left.as_millis() as u64).min(len / 2);
            bar.set_position(done);
            let what = if phase == 1 { "without" } else { "with" };
            bar.set_message(format!(
                "phase {phase}/2, {what} the request: {:.0} s left",
                left.as_secs_f64().ceil()
            ));
        }
    }
}

/// However the measurement ends, the line is cleared before anything else is printed.
impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
