"""The checks' logic, one module per concern; the suite's test modules stay thin."""
