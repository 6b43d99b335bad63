"""OCPP-J: the rules of the RPC (sans-io) and one trio endpoint that drives them.

Where each rule lives:

- ``frames.py``: what a frame is (decode/encode; which malformed frame gets which code);
- ``rpc_state.py``: what a connection does with each frame (the rule table at its top:
  ids in use, waiting CALLs, our one outstanding CALL); its events are in ``rpc_events.py``;
- ``validation.py``: payload schemas, strict and lenient, and the code each failure gets;
- ``dialect.py``: what is one OCPP version's (``OCPP16``): subprotocol, actions and who
  sends them, schema files, error-code spellings; ``errors.py``: the codes themselves;
- ``endpoint.py``: the trio driver (reading, answering in order, our calls' lock and
  timeouts, handlers, hooks).
"""
