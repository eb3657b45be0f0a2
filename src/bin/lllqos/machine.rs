//! What is in force on this machine: the library's model (`lllqos::status`), collected with what
//! only the command knows, each lllqos holder's own `--latency`, read from its command line with
//! the command line's one definition.

use std::path::Path;

use lllqos::Latency;
use lllqos::cli::{Cli, Subcommand};

pub use lllqos::status::{Cpu, Holder, Machine, Reading, Registry, Wakeup, allowed};

/// What is in force now, each lllqos holder's own value included.
pub fn collect() -> Machine {
    Machine::collect_with(asked_by_lllqos)
}

/// What an lllqos asked for, from its own command line (read with the one definition of it): the
/// latency of a hold, a wrapper or a measurement's phase two, when given as a latency.
fn asked_by_lllqos(arguments: &[String]) -> Option<Latency> {
    let program = Path::new(arguments.first()?).file_name()?;
    if program != "lllqos" {
        return None;
    }
    let cli = <Cli as clap::Parser>::try_parse_from(arguments).ok()?;
    let request = match &cli.subcommand {
        None => &cli.hold.request,
        Some(Subcommand::Measure(measure)) => &measure.request,
        Some(_) => return None,
    };
    (request.max_state.is_none() && request.cpu.is_none()).then_some(request.latency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_lllqos_asked_for_is_read_from_its_command_line() {
        let args = |line: &str| -> Vec<String> { line.split(' ').map(String::from).collect() };
        let asked = |line: &str| asked_by_lllqos(&args(line)).map(Latency::as_micros);
        assert_eq!(asked("lllqos -l 123 -- sleep 9"), Some(123));
        assert_eq!(asked("/usr/bin/lllqos --latency 0.5ms"), Some(500));
        assert_eq!(
            asked("lllqos --name c1 --strict --quiet --pid 7 --latency 17"),
            Some(17)
        );
        assert_eq!(asked("lllqos measure -l 5"), Some(5));
        assert_eq!(asked("lllqos --max-state C1 -- x"), None);
        assert_eq!(asked("lllqos --cpu 1 -l 5"), None);
        assert_eq!(asked("cyclictest -l 5"), None);
        assert_eq!(asked("lllqos status"), None);
    }
}
