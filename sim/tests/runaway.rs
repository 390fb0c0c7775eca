//! A seed whose cluster sends frames in a loop that never waits fails with a panic naming the
//! runaway, instead of filling memory while the simulated clock stands still.

use std::time::Duration;

use cluster::io::runtime::{self, FRAMES_PER_INSTANT_MAX};

#[madsim::test]
async fn frames_sent_while_the_clock_moves_are_never_a_runaway() {
    for _ in 0..3 {
        for _ in 0..FRAMES_PER_INSTANT_MAX {
            runtime::frame_sent();
        }
        runtime::sleep(Duration::from_millis(1)).await;
    }
}

#[madsim::test]
#[should_panic(expected = "runaway")]
async fn a_loop_sending_without_the_clock_moving_fails_the_seed() {
    for _ in 0..=FRAMES_PER_INSTANT_MAX {
        runtime::frame_sent();
    }
}
