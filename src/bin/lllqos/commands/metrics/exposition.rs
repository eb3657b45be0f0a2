//! The Prometheus text exposition format (version 0.0.4), as much of it as lllqos writes: metric
//! families with `# HELP` and `# TYPE`, samples with labels, values as Go formats them.

use std::fmt::Write as _;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One sample: its labels (name, value) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    /// A sample with these labels.
    pub fn new(labels: Vec<(&'static str, String)>, value: f64) -> Sample {
        Sample { labels, value }
    }

    /// A sample without labels.
    pub fn bare(value: f64) -> Sample {
        Sample::new(Vec::new(), value)
    }
}

/// The text of an exposition, built whole before anything is written: no reader ever sees half a
/// line.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Adds a family with its samples; a family without samples is left out.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for sample in samples {
            self.text.push_str(name);
            if !sample.labels.is_empty() {
                let labels: Vec<String> = (sample.labels.iter())
                    .map(|(label, value)| format!("{label}=\"{}\"", escape_label(value)))
                    .collect();
                let _ = write!(self.text, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(self.text, " {}", format_value(sample.value));
        }
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A HELP text: backslash and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and newline escaped.
fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value as Prometheus's own Go code writes it (`strconv.FormatFloat(v, 'g', -1, 64)`): the
/// shortest digits that read back exactly, in exponent form below 1e-4 and from 1e6 (`4.5e-05`,
/// `0.000123`, `2e+06`), and `+Inf`, `-Inf`, `NaN`.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the shortest digits too: `4.5e-5`, `1.23e-4`, `2e6`.
    let shortest = format!("{value:e}");
    let Some((mantissa, exponent)) = shortest.split_once('e') else {
        return shortest;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return shortest;
    };
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    // Plain decimal: Rust's `{}` prints the same shortest digits without an exponent.
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_go_writes_them() {
        assert_eq!(format_value(123e-6), "0.000123");
        assert_eq!(format_value(45e-6), "4.5e-05");
        assert_eq!(format_value(1e-6), "1e-06");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(2_000_000.0), "2e+06");
        assert_eq!(format_value(123_456.0), "123456");
        assert_eq!(format_value(12_345.678), "12345.678");
        assert_eq!(format_value(1_234_567.0), "1.234567e+06");
        assert_eq!(format_value(2e21), "2e+21");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let mut exposition = Exposition::default();
        exposition.family(
            "lllqos_x_seconds",
            Kind::Gauge,
            "A \\ help\nline.",
            vec![Sample::new(vec![("command", "a \"b\"\n\\c".into())], 0.5)],
        );
        exposition.family("lllqos_empty", Kind::Counter, "Nothing.", Vec::new());
        assert_eq!(
            exposition.text(),
            "# HELP lllqos_x_seconds A \\\\ help\\nline.\n# TYPE lllqos_x_seconds gauge\nlllqos_x_seconds{command=\"a \\\"b\\\"\\n\\\\c\"} 0.5\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_finite_value_reads_back_exactly(value in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let text = format_value(value);
            proptest::prop_assert_eq!(text.parse::<f64>().ok(), Some(value), "{}", text);
        }

        #[test]
        fn a_label_value_never_ends_its_quotes_or_its_line(value in ".*") {
            let escaped = escape_label(&value);
            proptest::prop_assert!(!escaped.contains('\n'));
            // Every quote is escaped: an even number of backslashes never precedes one.
            let bytes = escaped.as_bytes();
            for (i, _) in escaped.match_indices('"') {
                let backslashes = bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count();
                proptest::prop_assert!(backslashes % 2 == 1, "{}", escaped);
            }
        }
    }
}
