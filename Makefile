# The two commands of the README:
#   make run    build and run the proxy in its development profile
#   make test   install what the tests need, then run every check CI runs
# Both install their dependencies themselves (scripts/deps.sh) and are safe to repeat.

CARGO ?= cargo

.PHONY: run test deps build lint unit contracts bench

run: deps
	$(CARGO) build --locked --release -p flytrap
	./target/release/flytrap serve

test: deps lint unit contracts

deps:
	@scripts/deps.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --workspace --all-targets
	$(CARGO) test --locked --workspace --doc

contracts:
	cd contracts && npm test

bench: deps
	$(CARGO) bench --locked -p flytrap-proto --bench codec
