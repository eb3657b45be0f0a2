"""Type stubs of lllqos._lllqos, the Rust half of the package (import lllqos, not this module)."""

import os
from types import TracebackType
from typing import Iterable, Iterator, Optional, Type, Union

__version__: str

_Cpus = Union[str, Iterable[int]]

class LowLatencyLease:
    """A lease on the kernel's CPU wake-up latency (PM QoS)."""

    def __init__(
        self,
        target_value: int = 0,
        dev_path: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        cpus: Optional[_Cpus] = None,
        max_state: Optional[str] = None,
    ) -> None: ...
    def acquire(self) -> bool:
        """Places the request; True when it is in force, False when the node is missing or not permitted."""
    def acquired(self) -> bool:
        """Whether the request is in force now."""
    def release(self) -> None:
        """Removes the request (nothing when none is held)."""
    def set(self, value: int) -> None:
        """Changes the limit to value microseconds, in place while held."""
    @property
    def target(self) -> Optional[int]: ...
    @property
    def dev_path(self) -> Optional[str]: ...
    @property
    def cpus(self) -> Optional[str]: ...
    @property
    def max_state(self) -> Optional[str]: ...
    def __enter__(self) -> "LowLatencyLease": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...

class Periodic(Iterator[float]):
    """Periodic activations: each step sleeps until the next deadline and returns it (seconds on the monotonic clock)."""

    def __iter__(self) -> "Periodic": ...
    def __next__(self) -> float: ...

def periodic(period: float, align_secs: Optional[float] = None) -> Periodic:
    """Periodic activations every period seconds, slept to with absolute sleeps."""

def _status_json() -> str: ...
