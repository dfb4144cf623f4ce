class StateConflict(Exception):
    """The request is valid but the object's current state forbids it (HTTP 409).

    Distinct from integrations.errors.Conflict, which is another system answering 409/410."""
