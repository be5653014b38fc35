//! Benchmark drivers that start Mosquitto, HAProxy, anvil and FlyTrap on loopback and measure
//! them side by side. The scripts live in this folder; results go under `bench/results/`.
