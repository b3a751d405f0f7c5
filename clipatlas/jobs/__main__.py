"""``python -m clipatlas.jobs``: one worker process (what ``clipatlas serve`` starts)."""

from clipatlas.jobs.worker import main

if __name__ == "__main__":
    main()
