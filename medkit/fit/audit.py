"""The data audit every `medkit fit` runs first (`medkit.data.audit`): errors refuse the fit, warnings are kept."""

from ..data.audit import audit_source

__all__ = ["audit_before_fit"]


def audit_before_fit(data, audit: bool = True, accept=(), log=print, multilabel: bool = False) -> dict:
    """Audit `data`, log its warnings, raise DataError on an error not accepted; return the checkpoint's record."""
    if not audit:
        log("medkit fit: the data audit was skipped (--no-audit): duplicates, label faults and leaks were not checked")
        return {"skipped": True}
    result = audit_source(data, accept=tuple(accept), multilabel=multilabel)
    for finding in result.warnings:
        log(finding.line())
    result.raise_on_errors()
    log(f"medkit fit: data audit: {len(result.warnings)} warning(s), no errors ({result.stats['seconds']:.1f} s)")
    return result.record()
