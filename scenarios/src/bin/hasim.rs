//! `hasim`: the simulator's command line. See `hasim --help`.

/// A simulated world allocates and frees small objects by the million (frames, tasks, WAL
/// records); mimalloc's per-thread free lists serve them faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(scenarios::cli::main());
}
