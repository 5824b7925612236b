"""What every DCC host needs, written once with the standard library only.

Maya, Houdini, Blender and the review tool each bind this to their own UI: `HostJob` runs a
groom job on a worker thread and hands progress and the result to the host's UI thread;
`GroomOptions` is what an options dialog collects; `reserve_output` names the file a groom is
saved to without overwriting another. `tressel.hosting.install` (not imported here) writes the
files that make each DCC load its host.
"""

from tressel.hosting.jobs import CallQueue, HostJob, HostResult, default_connect, run_groom_job
from tressel.hosting.naming import groom_stem, release, reserve_output
from tressel.hosting.options import GroomOptions, node_name, parse_strands

__all__ = [
    "CallQueue", "GroomOptions", "HostJob", "HostResult", "default_connect", "groom_stem",
    "node_name", "parse_strands", "release", "reserve_output", "run_groom_job",
]
