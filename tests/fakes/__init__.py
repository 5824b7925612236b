"""Recording fakes of DCC APIs (Maya) for the host tests."""
