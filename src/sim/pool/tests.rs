use super::*;
use crate::time::Timestamp;

fn job(arrival_s: i64, width_units: u64, runtime_s: i64) -> Job {
    Job {
        arrival: Timestamp::from_secs(arrival_s),
        width: width_units * 100,
        runtime_ms: runtime_s * 1000,
    }
}

fn config(model: JobModel, boot_s: i64) -> PoolConfig {
    PoolConfig {
        capacity: 400,
        boot_ms: boot_s * 1000,
        model,
        billing: Billing::PerSecond {
            minimum: std::time::Duration::ZERO,
        },
        kill: KillEffect::Restart,
    }
}

const DRAIN: ScaleDown = ScaleDown {
    order: VictimOrder::IdleFirst,
    removal: Removal::Drain { timeout_ms: None },
};

/// Runs the pool's own events until nothing is left.
fn drain_events(pool: &mut Pool, until: i64) {
    while let Some(at) = pool.next_event() {
        if at > until {
            break;
        }
        pool.advance(at);
    }
}

#[test]
fn fifo_start_waits_for_capacity_and_boot() {
    let jobs = [job(0, 2, 100), job(0, 4, 50)];
    let mut pool = Pool::new(config(JobModel::Slot, 30), &jobs, 1, 0);
    pool.advance(0);
    assert_eq!(pool.demand_units(), 600);
    pool.scale_to(2, DRAIN, 0);
    assert_eq!((pool.requested(), pool.ready()), (2, 1));
    drain_events(&mut pool, i64::MAX);
    let totals = pool.finish(200_000);
    let waits: Vec<i64> = totals.outcomes.iter().map(|o| o.wait_ms).collect();
    // job 2 needs 4 units: 2 free on worker 0 + worker 1 after its 30 s boot.
    assert_eq!(waits, vec![0, 30_000]);
    assert_eq!(totals.unfinished, 0);
    assert_eq!(totals.ledger.accounted_ms, 2 * 200_000);
}

#[test]
fn strict_fifo_blocks_later_jobs_behind_a_wide_head() {
    let jobs = [job(0, 3, 100), job(1, 4, 10), job(2, 1, 10)];
    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
    drain_events(&mut pool, i64::MAX);
    let totals = pool.finish(300_000);
    let waits: Vec<i64> = totals.outcomes.iter().map(|o| o.wait_ms / 1000).collect();
    assert_eq!(
        waits,
        vec![0, 99, 108],
        "the 1-unit job waits behind the 4-unit head"
    );
}

#[test]
fn scale_down_removes_idle_first_and_drains_busy() {
    let jobs = [job(0, 1, 100)];
    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 3, 0);
    pool.advance(0);
    pool.scale_to(0, DRAIN, 10_000);
    assert_eq!(pool.requested(), 0);
    assert_eq!(
        pool.sample(10_000).billed_workers,
        1,
        "the busy worker drains"
    );
    drain_events(&mut pool, i64::MAX);
    assert_eq!(
        pool.sample(100_000).billed_workers,
        0,
        "released when its job ended"
    );
    let totals = pool.finish(100_000);
    assert_eq!(totals.ledger.accounted_ms, 10_000 * 2 + 100_000);
    assert_eq!(totals.restarts, 0);
}

#[test]
fn kill_requeues_work_and_drain_timeout_forces() {
    let jobs = [job(0, 1, 100)];
    let kill = ScaleDown {
        order: VictimOrder::Newest,
        removal: Removal::Kill,
    };
    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
    pool.advance(0);
    pool.scale_to(0, kill, 20_000);
    assert_eq!(
        pool.sample(20_000).queued_units,
        100,
        "killed work is queued again"
    );
    pool.scale_to(1, kill, 30_000);
    drain_events(&mut pool, i64::MAX);
    let totals = pool.finish(130_000);
    assert_eq!(totals.restarts, 1);
    assert_eq!(
        totals.outcomes[0].wait_ms, 30_000,
        "wait counts to the start that finished"
    );

    let timeout = ScaleDown {
        order: VictimOrder::IdleFirst,
        removal: Removal::Drain {
            timeout_ms: Some(5_000),
        },
    };
    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
    pool.advance(0);
    pool.scale_to(0, timeout, 10_000);
    drain_events(&mut pool, 15_000);
    let sample = pool.sample(15_000);
    assert_eq!((sample.billed_workers, sample.queued_units), (0, 100));
}

#[test]
fn newest_order_ignores_busyness_idle_first_does_not() {
    // A (4 units) fills worker 0; worker 1 comes at 1 s and takes B; A ends at 100 s.
    let jobs = [job(0, 4, 100), job(2, 1, 200)];
    let billed_after = |order: VictimOrder| {
        let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
        pool.advance(0);
        pool.scale_to(2, DRAIN, 1_000);
        drain_events(&mut pool, 150_000);
        pool.scale_to(
            1,
            ScaleDown {
                order,
                removal: Removal::Drain { timeout_ms: None },
            },
            150_000,
        );
        pool.sample(150_000).billed_workers
    };
    assert_eq!(
        billed_after(VictimOrder::IdleFirst),
        1,
        "idle worker 0 released"
    );
    assert_eq!(
        billed_after(VictimOrder::Newest),
        2,
        "busy worker 1 drains, idle worker 0 stays"
    );
}

#[test]
fn gang_and_moldable_models() {
    let jobs = [job(0, 6, 100)];
    let mut pool = Pool::new(config(JobModel::Gang, 0), &jobs, 2, 0);
    drain_events(&mut pool, i64::MAX);
    let totals = pool.finish(100_000);
    assert_eq!(totals.outcomes[0].runtime_ms, 100_000);

    let mut pool = Pool::new(config(JobModel::Moldable, 0), &jobs, 1, 0);
    drain_events(&mut pool, i64::MAX);
    let totals = pool.finish(150_000);
    assert_eq!(
        totals.outcomes[0].runtime_ms, 150_000,
        "600 unit·s of work at width 4"
    );
}

#[test]
fn booting_workers_are_removed_before_ready_ones() {
    let jobs = [job(0, 1, 100)];
    let mut pool = Pool::new(config(JobModel::Slot, 60), &jobs, 1, 0);
    pool.advance(0);
    pool.scale_to(3, DRAIN, 0);
    pool.scale_to(1, DRAIN, 10_000);
    let sample = pool.sample(10_000);
    assert_eq!((sample.ready_workers, sample.billed_workers), (1, 1));
    let totals = pool.finish(100_000);
    assert_eq!(
        totals.ledger.accounted_ms,
        100_000 + 2 * 10_000,
        "booting time is billed"
    );
}

#[test]
fn reversible_removal_keeps_working_until_idle_and_is_cancelled_by_a_scale_up() {
    let when_idle = ScaleDown {
        order: VictimOrder::IdleFirst,
        removal: Removal::WhenIdle {
            timeout_ms: 1_000_000,
            force: false,
        },
    };
    let jobs = [job(0, 1, 100), job(10, 1, 100)];
    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
    pool.advance(0);
    pool.scale_to(0, when_idle, 5_000);
    assert_eq!(pool.requested(), 1, "still counted until it is idle");
    drain_events(&mut pool, 10_000);
    assert_eq!(
        pool.sample(10_000).running_units,
        200,
        "it still takes new work"
    );
    pool.scale_to(0, when_idle, 20_000);
    assert_eq!(pool.requested(), 1, "not marked twice");
    drain_events(&mut pool, 110_000);
    assert_eq!(pool.requested(), 0, "removed the moment it was idle");

    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
    pool.advance(0);
    pool.scale_to(0, when_idle, 5_000);
    pool.scale_to(1, when_idle, 6_000);
    drain_events(&mut pool, 200_000);
    assert_eq!(
        pool.requested(),
        1,
        "the scale-up cancelled the removal instead of launching"
    );
    assert_eq!(pool.finish(200_000).ledger.launches, 1);
}

#[test]
fn reversible_removal_times_out_into_keep_or_kill() {
    let jobs = [job(0, 1, 100)];
    for (force, requested, restarts) in [(false, 1, 0), (true, 0, 1)] {
        let down = ScaleDown {
            order: VictimOrder::IdleFirst,
            removal: Removal::WhenIdle {
                timeout_ms: 10_000,
                force,
            },
        };
        let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
        pool.advance(0);
        pool.scale_to(0, down, 5_000);
        drain_events(&mut pool, 15_000);
        assert_eq!(pool.requested(), requested, "force {force}");
        assert_eq!(pool.finish(20_000).restarts, restarts);
    }
}

#[test]
fn closest_to_next_hour_picks_by_billing_hour_not_by_busyness() {
    // worker 0 launched at 0 (busy), worker 1 at 40 min (idle); at 70 min worker 0 is 10 min
    // into its second hour, worker 1 30 min into its first: worker 1 is closer to its next hour.
    let jobs = [job(0, 1, 10_000)];
    let asg = ScaleDown {
        order: VictimOrder::ClosestToNextHour,
        removal: Removal::Kill,
    };
    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
    pool.advance(0);
    pool.scale_to(2, asg, 2_400_000);
    pool.scale_to(1, asg, 4_200_000);
    assert_eq!(pool.finish(4_200_000).restarts, 0, "idle worker 1 went");
    // at 100 min worker 0 is 40 min into its hour, worker 1 (launched at 80 min) 20 min.
    let mut pool = Pool::new(config(JobModel::Slot, 0), &jobs, 1, 0);
    pool.advance(0);
    pool.scale_to(2, asg, 4_800_000);
    pool.scale_to(1, asg, 6_000_000);
    assert_eq!(pool.finish(6_000_000).restarts, 1, "busy worker 0 killed");
}
