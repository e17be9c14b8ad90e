"""Publishes a whole job's progress to Herald: what a Celery task (or any worker) would call.

    HERALD_SERVICE_KEY=hsk_... python3 publish_job.py --owner alice --project demo --steps 5

In a Celery task:

    from herald_publish import HeraldPublisher
    from publish_job import run_job

    @app.task
    def convert(owner_id, project_id, path):
        run_job(HeraldPublisher.from_env(), owner_id, project_id, name=path, work=lambda step: convert_part(path, step))

Prints the file's record, then one JSON line per stored update.
"""

import argparse
import json
import sys

from herald_publish import HeraldPublisher


def run_job(publisher, owner_id, project_id=None, name=None, steps=5, work=lambda step: None, out=None):
    """Registers a file, publishes PROCESSING updates for ``steps`` steps of ``work``, then COMPLETED.

    If ``work`` raises, the file ends FAILED with the error as its message, and the error is raised again.
    Returns the file's id.
    """
    emit = out or (lambda entry: None)
    record = publisher.register("file", owner_id=owner_id, project_id=project_id, name=name)
    file_id = record["id"]
    emit(record)
    emit(publisher.append("file", file_id, "processing_started", "PROCESSING", progress=0))
    try:
        for step in range(1, steps + 1):
            work(step)
            progress = round(100 * step / (steps + 1), 1)
            emit(publisher.append("file", file_id, "step_done", "PROCESSING", progress=progress, message=f"step {step} of {steps}"))
    except Exception as error:
        emit(publisher.append("file", file_id, "processing_failed", "FAILED", message=str(error)[:10_000]))
        raise
    emit(publisher.append("file", file_id, "processing_completed", "COMPLETED", progress=100, data={"steps": steps}))
    return file_id


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner", required=True, help="the user who may watch the file")
    parser.add_argument("--project", help="share it with this project's members")
    parser.add_argument("--name", help="the file's name")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    run_job(
        HeraldPublisher.from_env(),
        args.owner,
        args.project,
        args.name,
        args.steps,
        out=lambda entry: print(json.dumps(entry), flush=True),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
