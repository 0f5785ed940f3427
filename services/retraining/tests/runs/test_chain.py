"""Trigger → pipeline run → gate → rollout, with the trigger's ``led_to`` kept up to date."""

from __future__ import annotations

from orchard_retraining.db import Database
from orchard_retraining.triggers import Trigger, TriggerIntake

from .conftest import MakeHarness

DRIFT = Trigger("evaluation", "credit-risk", "data_drift", "7 of 11 features drifted")


async def test_an_accepted_trigger_runs_the_chain_and_records_what_it_led_to(
    make_harness: MakeHarness, database: Database
) -> None:
    intake = TriggerIntake(database, cooldown_s=600)
    h = make_harness("--holdout", "better", ledger=intake)
    intake.on_accepted = h.runner.submit_for_trigger
    trigger, new = intake.receive(DRIFT, now=1_000.0)
    assert new
    assert trigger.led_to == {"pipeline_run_id": 1}
    [run] = h.store.list()
    assert (run.model, run.trigger_id) == ("credit-risk", trigger.id)
    assert run.options == {"actor": "trigger:evaluation"}
    done = await h.until(run.id, lambda r: r.gate_verdict is not None)
    assert "--trigger-id 1" in h.runner.logs(done.id)
    [recorded] = intake.history()
    assert recorded.led_to == {
        "pipeline_run_id": 1,
        "pipeline_status": "succeeded",
        "candidate_version": "41",
        "gate": "passed",
        "rollout_id": 101,
    }


async def test_a_deduplicated_trigger_or_a_resend_starts_nothing(
    make_harness: MakeHarness, database: Database
) -> None:
    intake = TriggerIntake(database, cooldown_s=600)
    h = make_harness(ledger=intake)
    intake.on_accepted = h.runner.submit_for_trigger
    intake.receive(DRIFT, now=1_000.0)
    again, _ = intake.receive(DRIFT, now=1_100.0)
    sent = Trigger("manual", "digits", "manual", "by hand", external_id="manual:1")
    intake.receive(sent, now=1_100.0)
    intake.receive(sent, now=1_200.0)
    assert again.outcome == "deduplicated"
    assert "pipeline_run_id" not in again.led_to
    assert [r.model for r in h.store.list()] == ["digits", "credit-risk"]


async def test_a_failed_run_is_recorded_on_its_trigger(
    make_harness: MakeHarness, database: Database
) -> None:
    intake = TriggerIntake(database, cooldown_s=600)
    h = make_harness("--mode", "fail", ledger=intake)
    intake.on_accepted = h.runner.submit_for_trigger
    trigger, _ = intake.receive(DRIFT)
    await h.finished(trigger.led_to["pipeline_run_id"])
    led_to = dict(intake.history()[0].led_to)
    ended_at = led_to.pop("ended_at")
    assert led_to == {"pipeline_run_id": 1, "pipeline_status": "failed"}
    assert ended_at >= trigger.received_at  # nothing shipped: a later trigger may retry


def test_a_trigger_whose_run_cannot_be_submitted_is_still_recorded(database: Database) -> None:
    def broken(_: object) -> dict[str, object]:
        raise RuntimeError("database is on fire")

    intake = TriggerIntake(database, cooldown_s=0, on_accepted=broken)
    record, new = intake.receive(DRIFT)
    assert new
    assert record.led_to == {"error": "RuntimeError: database is on fire"}
