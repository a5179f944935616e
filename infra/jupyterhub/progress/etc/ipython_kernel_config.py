# Every kernel of the hub's servers reports progress to the live room (wod_progress).
c = get_config()
c.InteractiveShellApp.extensions = ["wod_progress"]
