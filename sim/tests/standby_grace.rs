//! A coordinator that starts with a standby configured waits, for a grace, for the standby to
//! come back before it acts on a catalog change without it; after the grace, it goes on alone.

use std::time::Duration;

use cluster::coordinator::mirroring::link::StandbyLink;

#[madsim::test]
async fn a_change_waits_for_the_standby_during_the_grace_and_not_after() {
    let link = StandbyLink::default();
    // Without a grace (a coordinator with no standby configured, or a broken stream), nothing
    // waits.
    let began = madsim::time::Instant::now();
    link.wait_flushed(10).await;
    assert!(began.elapsed() < Duration::from_millis(1));
    link.expect_standby(Duration::from_secs(3));
    let began = madsim::time::Instant::now();
    link.wait_flushed(20).await;
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3001),
        "waits out the grace: {waited:?}"
    );
    let began = madsim::time::Instant::now();
    link.wait_flushed(30).await;
    assert!(
        began.elapsed() < Duration::from_millis(1),
        "the grace is over"
    );
}
