"""Host bookkeeping: what this machine's runs share and what outlives none of them."""
