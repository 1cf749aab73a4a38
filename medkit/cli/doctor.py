"""`medkit doctor`: one screen about this machine and what the workshop needs."""

HELP = "Show versions, CPU/GPU, RAM, network, cached weights and datasets, and workshop warnings."


def add_arguments(parser):
    pass


def run(args) -> int:
    from ..env import doctor_report

    rows, warnings = doctor_report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for warning in warnings:
        print(f"WARNING: {warning}")
    if not warnings:
        print("OK: this machine can run the workshop profile.")
    return 0
