"""The job record and everything that changes it.

    states       statuses, stages, the transitions table (pure)
    record       transition(): the one writer of state; publishes job_update
    submission   validate and queue files (batch API, uploads)
    worker       what a running task reports: claim, progress, complete, fail
    actions      what an operator does: cancel, retry, delete, download
    revisions    caption review: read a revision, save an edit as a new one, revert, re-render
    history      a job's caption revisions as its result records them (pure reads)
    artifacts    output names, staging and the manifest of published files
    queries      lists, counts, batches, stale jobs
    serialize    the JSON shapes of a job
    reaper       requeue or fail jobs whose worker died
"""
