//! `hasim`: the simulator's command line. See `hasim --help`.

fn main() {
    std::process::exit(sim::cli::main());
}
