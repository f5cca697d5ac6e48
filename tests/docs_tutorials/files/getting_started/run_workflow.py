# Verbatim from KamikaziD/ruvon-docs docs/tutorials/getting-started.md @ e437d0b8e72e, code block 5.
# Do not edit below this header: the test runs the documented code unchanged.
# run_workflow.py
import asyncio
from ruvon.builder import WorkflowBuilder
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.observability.logging import LoggingObserver

async def main():
    # Create persistence (in-memory SQLite)
    persistence = SQLitePersistenceProvider(db_path=":memory:")
    await persistence.initialize()

    # Create builder
    builder = WorkflowBuilder(
        config_dir="config/",
    )

    # Start workflow
    workflow = await builder.create_workflow(
        workflow_type="HelloWorkflow",
        persistence_provider=persistence,
        execution_provider=SyncExecutionProvider(),
        workflow_observer=LoggingObserver(),
        workflow_builder=builder,
        initial_data={"name": "Alice"}
    )

    # Execute all steps
    while workflow.status == "ACTIVE":
        await workflow.next_step(user_input={})

    print(f"Workflow completed! Final state: {workflow.state}")

    await persistence.close()

if __name__ == "__main__":
    asyncio.run(main())
