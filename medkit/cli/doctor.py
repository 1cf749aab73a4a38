"""`medkit doctor`: one screen about this machine and what the workshop needs (torch is probed, not imported)."""

HELP = "Show versions, CPU/GPU, RAM, network, cache, cached weights and datasets, and workshop warnings."


def add_arguments(parser):
    pass


def run(args) -> int:
    from ..core.env import doctor_report
    from . import emit

    rows, warnings = doctor_report()
    width = max(len(k) for k, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    lines += [f"WARNING: {warning}" for warning in warnings]
    if not warnings:
        lines.append("OK: this machine can run the workshop profile.")
    emit(args, {"rows": dict(rows), "warnings": warnings, "ok": not warnings}, "\n".join(lines))
    return 0
