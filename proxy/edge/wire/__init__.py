"""The public listener's data path: ``asyncio.Protocol`` on uvloop, llhttp via ``httptools``.

    listener.PublicListener   accepting, admission bounds, the sweep, draining
    client.ClientConn         one client connection: llhttp callbacks, deadlines, pipelining
    exchange.Exchange         one request and its answer; the upstream connection's sink
    hooks.HookRun             a hooked route's ``kernel.hooked.Hooked`` (task, bounded body)
    upstream.Pool             Kratos' connections: a LIFO keep-alive pool, bounded, with waiters
    heads                     the header policy on bytes (pure)
    flow.ReadGate             write-side flow control: why a transport is not read
    clock                     one coarse clock and one periodic sweep instead of timers
    observe                   metrics cells and the buffered access log
    limits                    the resource limits, the open-files limit

No task, coroutine, future or timer is made for a pass-through request in steady state; the
hooked routes (a small table on the canonical route) are the only requests that get a task.
"""
