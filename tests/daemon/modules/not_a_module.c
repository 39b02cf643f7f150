/* A shared object that does not declare EVTASK_MODULE(): refused. */
int evtask_task(void);

int evtask_task(void) {
        return 0;
}
