"""Tressel's Maya start-up: build the Tressel shelf once Maya's UI is ready.

Maya runs this file from every loaded module's scripts folder, in a namespace it shares with
other userSetup.py files, so only one underscored name is defined here.
"""

import maya.utils


def _tressel_startup():
    import tressel_maya

    tressel_maya.startup()


maya.utils.executeDeferred(_tressel_startup)
