"""Simulated OCPP 1.6-J charge points and fleets, for tests, benchmarks and demos.

- :mod:`voltaro.sim.charger`: one charger that behaves like a real one;
- :mod:`voltaro.sim.local_list` and :mod:`voltaro.sim.reservations`: its Local Authorization
  List and Authorization Cache, its reservations and their rules;
- :mod:`voltaro.sim.profiles`: how often it talks and charges (realistic, stress, storm);
- :mod:`voltaro.sim.fleet`: many of them, over several processes when needed;
- :mod:`voltaro.sim.cli`: ``voltaro simulate``.
"""
