//! The order of `activate-standby`, apart from what carries each step out: given what has
//! happened so far, the next step, or a refusal.
//!
//! The order: refuse when already activated or without a copy of the catalog; stop receiving
//! the catalog stream; replay to the end of the valid WAL (the coordinator's state at its last
//! committed transaction); refuse while the old coordinator answers (two coordinators), asked
//! only now, right before the take-over, so that an old coordinator that came back while the
//! standby replayed (or stalled) is found; take over the catalog under the first epoch of a
//! new coordinator generation, kept on disk;
//! announce that generation to every segment instance; resolve the distributed transactions left
//! in doubt; serve as the coordinator. Each step follows only the one before it.
//!
//! The driver (`standby::activate`) reports each step's outcome as an [`Event`] and asks
//! [`Activation::next`] what to do.

/// One step of activation, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Whether this standby already is the coordinator.
    CheckNotActive,
    /// Whether it holds a copy of the catalog (its base backup arrived).
    CheckCatalog,
    /// Whether the old coordinator still answers a request.
    ProbeOldCoordinator,
    /// Stop the catalog stream: nothing more is received.
    StopReceiving,
    /// Replay everything received and cut any torn tail.
    ReplayToEnd,
    /// Record the catalog change of activation under a new coordinator generation, durably.
    TakeOver,
    /// Tell every segment instance the new epoch.
    Announce,
    /// Commit or roll back every prepared distributed transaction the old coordinator left.
    ResolveInDoubt,
    /// Start the prober and the resolver and serve clients.
    Serve,
}

/// What happened when a step ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// [`Step::CheckNotActive`]: whether this standby is already active.
    Active(bool),
    /// [`Step::CheckCatalog`]: whether it has a catalog.
    HasCatalog(bool),
    /// [`Step::ProbeOldCoordinator`]: whether the old coordinator answered.
    OldCoordinatorAnswered(bool),
    /// [`Step::StopReceiving`] and later steps: the step is done.
    Done(Step),
}

/// Why activation is refused before it takes over (a refusal after [`Step::StopReceiving`] has
/// the driver receive the catalog stream again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    AlreadyActive,
    NoCatalog,
    /// Activating now would give the cluster two coordinators.
    CoordinatorAlive,
}

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Run(Step),
    Refuse(Refusal),
    /// Every step is done: the standby is the coordinator.
    Activated,
}

/// Activation's progress: what has happened so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activation {
    /// The last step that completed and allows going on.
    passed: Option<Step>,
    refused: Option<Refusal>,
}

const ORDER: [Step; 9] = [
    Step::CheckNotActive,
    Step::CheckCatalog,
    Step::StopReceiving,
    Step::ReplayToEnd,
    Step::ProbeOldCoordinator,
    Step::TakeOver,
    Step::Announce,
    Step::ResolveInDoubt,
    Step::Serve,
];

impl Activation {
    /// The next step, given what has happened so far.
    pub fn next(&self) -> Next {
        if let Some(refusal) = self.refused {
            return Next::Refuse(refusal);
        }
        let at = self
            .passed
            .map_or(0, |s| ORDER.iter().position(|o| *o == s).unwrap() + 1);
        ORDER
            .get(at)
            .map_or(Next::Activated, |step| Next::Run(*step))
    }

    /// Records what happened when the step [`Activation::next`] gave ran. An event for any
    /// other step is a driver's mistake and is ignored.
    pub fn record(&mut self, event: Event) {
        let Next::Run(expected) = self.next() else {
            return;
        };
        let (step, refusal) = match event {
            Event::Active(active) => (
                Step::CheckNotActive,
                active.then_some(Refusal::AlreadyActive),
            ),
            Event::HasCatalog(has) => (Step::CheckCatalog, (!has).then_some(Refusal::NoCatalog)),
            Event::OldCoordinatorAnswered(answered) => (
                Step::ProbeOldCoordinator,
                answered.then_some(Refusal::CoordinatorAlive),
            ),
            Event::Done(step) => (step, None),
        };
        if step != expected {
            return;
        }
        match refusal {
            Some(refusal) => self.refused = Some(refusal),
            None => self.passed = Some(step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the machine with every check passing until `until` is next.
    fn up_to(until: Step) -> Activation {
        let mut a = Activation::default();
        while a.next() != Next::Run(until) {
            let Next::Run(step) = a.next() else {
                panic!("stopped before {until:?}: {:?}", a.next());
            };
            a.record(match step {
                Step::CheckNotActive => Event::Active(false),
                Step::CheckCatalog => Event::HasCatalog(true),
                Step::ProbeOldCoordinator => Event::OldCoordinatorAnswered(false),
                step => Event::Done(step),
            });
        }
        a
    }

    #[test]
    fn a_standby_that_is_already_the_coordinator_is_not_activated_again() {
        let mut a = Activation::default();
        assert_eq!(a.next(), Next::Run(Step::CheckNotActive));
        a.record(Event::Active(true));
        assert_eq!(a.next(), Next::Refuse(Refusal::AlreadyActive));
    }

    #[test]
    fn a_standby_without_a_catalog_cannot_become_the_coordinator() {
        let mut a = up_to(Step::CheckCatalog);
        a.record(Event::HasCatalog(false));
        assert_eq!(a.next(), Next::Refuse(Refusal::NoCatalog));
    }

    #[test]
    fn activation_is_refused_while_the_old_coordinator_answers() {
        let mut a = up_to(Step::ProbeOldCoordinator);
        a.record(Event::OldCoordinatorAnswered(true));
        assert_eq!(a.next(), Next::Refuse(Refusal::CoordinatorAlive));
        a.record(Event::Done(Step::TakeOver));
        assert_eq!(
            a.next(),
            Next::Refuse(Refusal::CoordinatorAlive),
            "a refusal is final"
        );
    }

    /// Standard seed 372: the old coordinator was down when activation began, came back while
    /// the standby stalled between replaying its WAL and taking over, and committed
    /// distributed transactions the standby never received; the standby, having asked first,
    /// took over and rolled back a transaction the old coordinator had committed on one
    /// segment. Asked last, the question finds the old coordinator back.
    #[test]
    fn the_old_coordinator_is_asked_last_before_the_take_over() {
        let mut a = up_to(Step::ReplayToEnd);
        a.record(Event::Done(Step::ReplayToEnd));
        assert_eq!(a.next(), Next::Run(Step::ProbeOldCoordinator));
        a.record(Event::OldCoordinatorAnswered(false));
        assert_eq!(a.next(), Next::Run(Step::TakeOver));
    }

    #[test]
    fn receiving_stops_before_the_received_wal_is_replayed_to_its_end() {
        let mut a = up_to(Step::StopReceiving);
        a.record(Event::Done(Step::StopReceiving));
        assert_eq!(a.next(), Next::Run(Step::ReplayToEnd));
    }

    #[test]
    fn the_catalog_is_taken_over_only_once_replayed_to_the_end() {
        let mut a = up_to(Step::ReplayToEnd);
        a.record(Event::Done(Step::TakeOver));
        assert_eq!(a.next(), Next::Run(Step::ReplayToEnd), "out of order");
        a.record(Event::Done(Step::ReplayToEnd));
        a.record(Event::OldCoordinatorAnswered(false));
        assert_eq!(a.next(), Next::Run(Step::TakeOver));
    }

    #[test]
    fn the_new_generation_is_announced_once_it_is_recorded() {
        let mut a = up_to(Step::TakeOver);
        a.record(Event::Done(Step::TakeOver));
        assert_eq!(a.next(), Next::Run(Step::Announce));
    }

    #[test]
    fn in_doubt_transactions_are_resolved_after_the_announcement_and_before_serving() {
        let mut a = up_to(Step::Announce);
        a.record(Event::Done(Step::Announce));
        assert_eq!(a.next(), Next::Run(Step::ResolveInDoubt));
        a.record(Event::Done(Step::ResolveInDoubt));
        assert_eq!(a.next(), Next::Run(Step::Serve));
        a.record(Event::Done(Step::Serve));
        assert_eq!(a.next(), Next::Activated);
    }
}
