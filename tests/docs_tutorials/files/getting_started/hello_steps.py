# Verbatim from KamikaziD/ruvon-docs docs/tutorials/getting-started.md @ e437d0b8e72e, code block 2.
# Do not edit below this header: the test runs the documented code unchanged.
# hello_steps.py
from ruvon.models import StepContext

def greet_user(state: dict, context: StepContext, name: str = "World") -> dict:
    """Greet the user."""
    greeting = f"Hello, {name}!"
    print(f"Step {context.step_name}: {greeting}")
    return {"greeting": greeting}

def say_goodbye(state: dict, context: StepContext) -> dict:
    """Say goodbye to the user."""
    name = state.get("name", "World")
    farewell = f"Goodbye, {name}! See you next time."
    print(f"Step {context.step_name}: {farewell}")
    return {"farewell": farewell}
