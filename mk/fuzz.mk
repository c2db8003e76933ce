# `make fuzz`: the fleet registry fuzzer at length (tests/unit/plugins/inventory/fleet_fuzz.py).
# `make units` runs 500 of its cases; this runs 10,000 (FUZZ_CASES, FUZZ_SEED to change) and prints
# the cases run, the outcomes, the most frequent refusals and the time taken.
FUZZ_CASES ?= 10000
FUZZ_SEED ?= 17
.PHONY: fuzz
fuzz: venv
	$(BIN)/python tests/unit/plugins/inventory/fleet_fuzz.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED)
