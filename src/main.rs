//! The `lllqos` binary: everything it does is in the library (see `lllqos::app`).

fn main() {
    lllqos::app::main(std::env::args_os()).exit()
}
