"""``orchard up``: start the local platform, then supervise it until it is stopped.

The order: MLflow; on the first run, the training job; the inference runtime; evaluation;
retraining (which serves the route table); the gateway last, so everything it calls is ready
before it takes requests. Stopping goes in reverse, so the gateway's queued prediction events
still reach evaluation.
"""

from __future__ import annotations

import contextlib
import os

import httpx
from rich.console import Console
from rich.text import Text

from orchard_cli.console import PrefixedLog
from orchard_cli.lockfile import AlreadyRunningError, InstanceLock, InstanceState, ServiceState
from orchard_cli.monitoring import (
    SCRAPE_JOBS,
    alertmanager_spec,
    find_binaries,
    find_monitoring_dir,
    prometheus_spec,
)
from orchard_cli.platform import (
    CHAMPION,
    PlatformConfig,
    PlatformError,
    champion_versions,
    evaluation_spec,
    example_curl,
    gateway_spec,
    inference_spec,
    missing_modules,
    mlflow_spec,
    parse_training_output,
    retraining_spec,
    training_spec,
)
from orchard_cli.ports import PortInUseError, check_ports_free
from orchard_cli.supervisor import (
    Outcome,
    StopRequested,
    Supervisor,
    SupervisorError,
    describe_returncode,
)

__all__ = ["run_up"]

_LOG_NAMES = (
    "mlflow",
    "train",
    "inference",
    "evaluation",
    "retraining",
    "gateway",
    "alertmanager",
    "prometheus",
)


def _state(cfg: PlatformConfig, status: str, supervisor: Supervisor | None = None) -> InstanceState:
    pids = {p.name: p.pid for p in supervisor.processes} if supervisor else {}
    services = {
        "gateway": ServiceState(cfg.gateway_url, f"{cfg.gateway_url}/readyz"),
        "inference": ServiceState(cfg.inference_url, f"{cfg.inference_url}/v2/health/ready"),
        "evaluation": ServiceState(cfg.evaluation_url, f"{cfg.evaluation_url}/readyz"),
        "retraining": ServiceState(cfg.retraining_url, f"{cfg.retraining_url}/readyz"),
        "mlflow": ServiceState(cfg.mlflow_url, f"{cfg.mlflow_url}/health"),
    }
    if cfg.monitoring:
        for name, url in (
            ("prometheus", cfg.prometheus_url),
            ("alertmanager", cfg.alertmanager_url),
        ):
            services[name] = ServiceState(url, f"{url}/-/ready")
    return InstanceState(
        pid=os.getpid(),
        status=status,
        data_dir=str(cfg.data_dir),
        services={
            name: ServiceState(s.url, s.health_url, pids.get(name)) for name, s in services.items()
        },
    )


def run_up(cfg: PlatformConfig, console: Console, errors: Console) -> int:
    """Run the platform until it is stopped; returns the process exit code.

    0 after a stop by SIGINT, SIGTERM or SIGHUP; 1 when it is already running, a port is
    busy, a package is missing, something fails to start, or a service exits on its own.
    """
    lock = InstanceLock(cfg.data_dir)
    try:
        lock.acquire()
    except AlreadyRunningError as e:
        errors.print(str(e), markup=False, soft_wrap=True)
        return 1
    except OSError as e:
        errors.print(f"Cannot use data folder {cfg.data_dir}: {e}", markup=False, soft_wrap=True)
        return 1
    try:
        try:
            check_ports_free(cfg.host, cfg.ports)
        except PortInUseError as e:
            errors.print(f"Cannot start Orchard: {e}", markup=False, soft_wrap=True)
            return 1
        missing = missing_modules()
        if missing:
            message = ", ".join(missing)
            errors.print(
                f"Cannot start Orchard: not installed: {message} — run `uv sync` in the workspace",
                markup=False,
                soft_wrap=True,
            )
            return 1
        lock.write_state(_state(cfg, "starting"))
        return _run(cfg, lock, console, errors)
    finally:
        lock.release()


def _run(cfg: PlatformConfig, lock: InstanceLock, console: Console, errors: Console) -> int:
    supervisor = Supervisor(PrefixedLog(console, _LOG_NAMES))
    client = httpx.Client(timeout=10.0, trust_env=False)
    code = 0
    with supervisor.trap_signals():
        try:
            _start(cfg, supervisor, client, console)
            lock.write_state(_state(cfg, "running", supervisor))
            _print_ready(cfg, client, console)
            outcome, exited = supervisor.supervise()
            if outcome is Outcome.CHILD_EXITED and exited is not None:
                errors.print(
                    f"{exited.name} {describe_returncode(exited.returncode or 0)} unexpectedly"
                    " — stopping Orchard",
                    markup=False,
                    soft_wrap=True,
                )
                code = 1
        except StopRequested:
            pass
        except (SupervisorError, PlatformError) as e:
            errors.print(f"Orchard failed to start: {e}", markup=False, soft_wrap=True)
            code = 1
        finally:
            client.close()
            # After SIGHUP the terminal may be gone; printing must not prevent the stop.
            with contextlib.suppress(OSError):
                if supervisor.processes:
                    console.print("Stopping Orchard…")
            supervisor.stop_all()
            supervisor.close()
    if code == 0 and supervisor.processes:
        with contextlib.suppress(OSError):
            console.print("Orchard stopped.")
    return code


def _start(
    cfg: PlatformConfig, supervisor: Supervisor, client: httpx.Client, console: Console
) -> None:
    with console.status("Starting MLflow…"):
        supervisor.start(mlflow_spec(cfg))
    versions = champion_versions(client, cfg.mlflow_url)
    untrained = [name for name, version in versions.items() if version is None]
    if untrained:
        console.print(
            f"First run: training and registering {', '.join(untrained)} "
            "(this takes a few minutes)…"
        )
        with console.status("Training the demo models…"):
            job = supervisor.run_job(training_spec(cfg))
        for model in parse_training_output(job.stdout_lines):
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(model.metrics.items()))
            console.print(f"Registered {model.name} version {model.version} ({metrics})")
        versions = champion_versions(client, cfg.mlflow_url)
    # Retraining routes each model to its champion: there must be one.
    for name, version in versions.items():
        if version is None:
            raise PlatformError(f"the registry has no {name}@{CHAMPION} after training")
    with console.status("Starting the inference runtime (loading models)…"):
        supervisor.start(inference_spec(cfg))
    # Ready before the gateway starts, so its first prediction events have somewhere to go.
    with console.status("Starting the evaluation service…"):
        supervisor.start(evaluation_spec(cfg))
    # Before the gateway: it polls its route table from retraining.
    with console.status("Starting the retraining service…"):
        supervisor.start(retraining_spec(cfg))
    with console.status("Starting the gateway…"):
        supervisor.start(gateway_spec(cfg))
    if cfg.monitoring:
        _start_monitoring(cfg, supervisor, console)


def _start_monitoring(cfg: PlatformConfig, supervisor: Supervisor, console: Console) -> None:
    binaries, folder = find_binaries(), find_monitoring_dir()
    if binaries.prometheus is None or binaries.alertmanager is None or folder is None:
        return  # checked when the config was made; gone since: run without
    timeouts = {"ready_timeout": cfg.ready_timeout, "stop_timeout": cfg.stop_timeout}
    with console.status("Starting Alertmanager…"):
        supervisor.start(
            alertmanager_spec(
                binaries.alertmanager,
                folder,
                cfg.data_dir,
                listen=cfg.listen(cfg.alertmanager_port),
                url=cfg.alertmanager_url,
                retraining_url=cfg.retraining_url,
                **timeouts,
            )
        )
    ports = {
        "gateway": cfg.gateway_port,
        "inference": cfg.inference_port,
        "evaluation": cfg.evaluation_port,
        "retraining": cfg.retraining_port,
    }
    with console.status("Starting Prometheus…"):
        supervisor.start(
            prometheus_spec(
                binaries.prometheus,
                folder,
                cfg.data_dir,
                listen=cfg.listen(cfg.prometheus_port),
                url=cfg.prometheus_url,
                targets={job: cfg.listen(ports[job]) for job in SCRAPE_JOBS},
                alertmanager=cfg.listen(cfg.alertmanager_port),
                **timeouts,
            )
        )


def _print_ready(cfg: PlatformConfig, client: httpx.Client, console: Console) -> None:
    curl = example_curl(client, cfg)
    rows = [
        ("Gateway", cfg.gateway_url),
        ("Runtime", cfg.inference_url),
        ("Evaluation", cfg.evaluation_url),
        ("Retraining", cfg.retraining_url),
        ("MLflow UI", cfg.mlflow_url),
    ]
    if cfg.monitoring:
        rows += [("Prometheus", cfg.prometheus_url), ("Alertmanager", cfg.alertmanager_url)]
    rows.append(("Data folder", str(cfg.data_dir)))
    console.print(Text("Orchard is up.", style="bold green"))
    for label, value in rows:
        console.print(Text.assemble(f"  {label:<13}", (value, "bold")), soft_wrap=True)
    console.print("Try a prediction through the gateway:")
    console.print(Text(f"  {curl}"), soft_wrap=True)
    console.print("Drive the closed loop (drift → retraining → canary) in another terminal:")
    console.print(Text("  orchard demo"), soft_wrap=True)
    if not cfg.monitoring:
        console.print(
            "Prometheus and Alertmanager are not running (--no-monitoring, or not installed: "
            "Debian's `prometheus` and `prometheus-alertmanager`)."
        )
    console.print("Press Ctrl-C to stop.")
