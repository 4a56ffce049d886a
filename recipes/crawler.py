"""A crawler looks like the perfect first asyncio program: fetch a page, find its
links, fetch those too, all at once.  The short version fits in fifteen lines
and falls over on the first real site.  It starts a request for every link it
meets, so a large site opens thousands of sockets; two tasks that find the
same link both fetch it; one bad page ends the whole run; a slow server hangs
it; a 50 MB "page" fills the memory; and the CPU-bound HTML parsing freezes
every other task while it runs.  This chapter builds :func:`crawl`, a crawler
that fixes each of these with a plain asyncio pattern: a fixed pool of worker
tasks fed by an :class:`asyncio.Queue`, a seen-set claimed before any
``await``, one spelling for every URL, timeouts and size caps on every
request, robots.txt, redirects followed by hand, parsing where it costs the
least, and a clean shutdown when it finishes, fails or is cancelled.  It
needs ``aiohttp``, ``beautifulsoup4`` and ``lxml`` (the parser BeautifulSoup
uses here): ``pip install aiohttp beautifulsoup4 lxml`` (or ``pip install
asyncio-cookbook[crawler]``).

The examples crawl a small local site (``tests/crawl_site.py``) that the
demo HTTP server serves under ``/site``.  It has everything a crawler meets
in the wild: cycles, fragments, off-site links, error pages, a page slower
than the timeout, an image, tag soup, redirect chains and loops, and a
6 MiB page.  ``base_url`` is the address of the demo HTTP server, something
like ``http://127.0.0.1:8080``: in your own session start it with ``python
-m tests.demo_servers --no-postgres`` from a checkout of the cookbook and
paste the ``base_url = ...`` line it prints.

Crawling a site
---------------

.. index::
   single: web crawler
   pair: aiohttp; web crawler

Give :func:`crawl` a start URL; it follows links on the same host up to
``max_depth`` links away and returns a :class:`CrawlResult`.  ``visited``
holds the pages that were fetched and parsed as HTML:

>>> from recipes.crawler import crawl
>>> result = await crawl(f"{base_url}/site/", timeout=0.5)
>>> def show(urls):
...     for url in sorted(urls):
...         print(url.replace(base_url, ""))
>>> show(result.visited)
/site/
/site/about.html
/site/blog/
/site/blog/first-post.html
/site/blog/second-post.html
/site/contact.html
/site/notes.html
/site/private/
/site/private/secret.html
/site/tag-soup.html

Every page that failed is in ``errors`` with a short reason, and the others
are unaffected by it:

>>> for url, reason in result.errors.items():
...     print(f"{url.replace(base_url, ''):20} {reason}")
/site/away.html      redirect off-site
/site/broken.html    HTTP 500
/site/data.json      not HTML
/site/huge.html      too large
/site/logo.png       not HTML
/site/loop-a.html    redirect loop
/site/loop-b.html    redirect loop
/site/missing.html   HTTP 404
/site/slow.html      timeout

The links to ``http://elsewhere.invalid/``, to another port of the same
host, and the ``mailto:`` and ``javascript:`` links on the home page were
never requested.

Running a fixed pool of workers
-------------------------------

.. index::
   single: worker pool
   pair: asyncio.Queue; worker pool
   single: asyncio.Queue; join() that never returns
   single: error messages; OSError: [Errno 24] Too many open files
   single: error messages; Task was destroyed but it is pending!

The tempting design is recursive: ``crawl_page`` fetches a page and then
``await asyncio.gather(*(crawl_page(link) for link in links))``.  Nothing
bounds it.  A page with 200 links starts 200 requests, each of those starts
200 more, and the program runs out of sockets or gets banned by the server
long before it runs out of pages.  :func:`crawl` instead starts exactly
``concurrency`` worker tasks that take URLs from an :class:`asyncio.Queue`.
A worker puts the links it finds back on the queue, so the amount of work
can grow but the number of requests in flight never exceeds the number of
workers.  Here is the pattern on its own, in a crawler small enough to read
at a glance (it parses on the event loop, and has none of the limits,
robots.txt and redirect handling of the sections below):

>>> import asyncio
>>> import aiohttp
>>> from recipes.crawler import extract_links
>>> async def crawl_with_pool(start, workers=4):
...     seen = {start}  # the seen-set: every URL ever queued
...     queue = asyncio.Queue()
...     queue.put_nowait(start)
...     busy = most_busy = 0
...     async def worker(session):
...         nonlocal busy, most_busy
...         while True:
...             url = await queue.get()
...             busy += 1
...             most_busy = max(most_busy, busy)
...             try:
...                 async with session.get(url) as response:
...                     html = await response.text()
...                 for link in extract_links(html, url):
...                     # Check and claim in one step: no await in between.
...                     if link.startswith(start) and link not in seen:
...                         seen.add(link)
...                         queue.put_nowait(link)
...             except Exception as exc:  # one bad page must not end it all
...                 print(f"{url} failed: {exc!r}")
...             finally:
...                 busy -= 1
...                 queue.task_done()  # join() counts these
...     timeout = aiohttp.ClientTimeout(total=10)
...     async with aiohttp.ClientSession(timeout=timeout) as session:
...         pool = [asyncio.create_task(worker(session))
...                 for _ in range(workers)]
...         try:
...             await queue.join()  # every URL queued has been handled
...         finally:
...             for task in pool:
...                 task.cancel()
...             await asyncio.gather(*pool, return_exceptions=True)
...     return seen, most_busy
>>> pages, most_busy = await crawl_with_pool(f"{base_url}/site/wide/")
>>> print(len(pages), "pages, at most", most_busy, "at a time")
41 pages, at most 4 at a time

``/site/wide/`` links to forty pages, each answered after 50 ms.  The
first worker to fetch it queues all forty, and the four workers take them
four at a time: each page is fetched once, and the fifth request waits for
one of the first four to finish.  Three details carry the pattern: the
number of workers is fixed when the crawl starts; a URL joins ``seen`` in
the same step as the check, before anything is awaited (*Fetching each
page once*, below); and every :meth:`~asyncio.Queue.get` is matched by a
:meth:`~asyncio.Queue.task_done` in a ``finally``, so that
:meth:`asyncio.Queue.join` returns once every queued URL has been handled.
The workers, which loop forever, are then cancelled and awaited.

.. important::

   The unbounded version fails with ``OSError: [Errno 24] Too many open
   files`` on a large site, or with a storm of timeouts once the connection
   pool is exhausted.  And workers that are not cancelled and awaited when the
   crawl ends are reported at exit as ``Task was destroyed but it is
   pending!``.

:meth:`asyncio.Queue.join` has a trap of its own: it waits for
:meth:`~asyncio.Queue.task_done` calls, and a worker that dies of an
unexpected exception makes none, so ``join()`` waits forever.  The workers
of :func:`crawl` turn every failure of a page into an entry in ``errors``,
but one exception still ends a worker: the one raised by your ``progress``
callback (*Watching progress*, below).  So :func:`crawl` waits for the join
*or* the first worker to finish, and re-raises what stopped it::

    joined = asyncio.ensure_future(queue.join())
    await asyncio.wait([joined, *workers], return_when=asyncio.FIRST_COMPLETED)
    for worker in workers:
        if worker.done():  # a worker only ever finishes by failing
            worker.result()  # re-raises what stopped it

When every job is known before the first one starts, there is no need for
a queue: :func:`recipes.limiting.bounded_gather` (or, for a list of URLs,
:func:`recipes.http_client.fetch_all`) runs them a few at a time.  A pool
fed by a queue is for work that grows as it is done, as here.
:ref:`recipes/queues:Stopping workers cleanly` has the same pattern with
its shutdown in detail.

.. versionadded:: 3.13

   :meth:`asyncio.Queue.shutdown` ends the workers' ``get()`` calls with
   ``asyncio.QueueShutDown`` instead of a cancellation (see
   :ref:`recipes/queues:Shutting a queue down`).  Cancelling the workers, as
   here, works on every version.

Fetching each page once
-----------------------

.. index::
   single: seen-set
   pair: race condition; check then act
   single: URL normalisation

The classic duplicate-fetch bug checks ``if url not in visited``, awaits the
fetch, and only then adds ``url`` to ``visited``.  Between the check and the
add, another task finds the same link, passes the same check and fetches the
page again.  :func:`crawl` *claims* a URL (puts it in its seen-set) in the
same synchronous step as the check, before anything is awaited, so no two
workers can ever hold the same URL: the ``if link not in seen`` and
``seen.add(link)`` of the pool above, with no ``await`` between them.
Tasks switch only at an ``await``, so no lock is needed (see
:doc:`/recipes/synchronization` for the cases where one is).

A page has many spellings, so links are first resolved against the page's
URL (and its ``<base href>``), and then reduced to one spelling by
:func:`normalize_url`, the normalisation of RFC 3986: lower-case scheme and
host, no default port, no fragment, ``/`` for an empty path, ``.`` and
``..`` resolved, and one percent-encoding (``%7e``, ``%7E`` and ``~`` are
the same character; a space is ``%20``).  On the example site,
``about.html``, ``about.html#team``, ``blog/../about.html`` and
``HTTP://127.0.0.1:.../site/about.html#contact`` are one page, fetched once
and counted once against ``max_pages``.

.. important::

   The seen-set, robots.txt and the request must all see the *same* URL.
   Give aiohttp a string and it normalises it once more, its own way, before
   sending: ``/public/../private/x.html`` goes out as ``/private/x.html``
   and ``/%7Eann/`` as ``/~ann/``.  A crawler that checks the first spelling
   against ``Disallow: /private/`` and lets aiohttp send it has fetched a
   page that robots.txt forbids; one that remembers ``/%7Eann/`` and
   ``/~ann/`` as two pages fetches one page twice.  :func:`crawl`
   normalises every URL it meets (the start URL, each link, each
   ``Location`` header) once, and sends exactly that string:
   ``yarl.URL(url, encoded=True)`` tells aiohttp that it is final.

Limiting depth, pages and hosts
-------------------------------

.. index::
   single: crawl depth
   pair: crawler; allowed hosts

The start page has depth 0, the pages it links to depth 1, and so on; pages
up to ``max_depth`` links away are fetched (counted along the shortest path,
even when a longer path reaches a page first).  ``max_pages`` caps the
number of URLs the crawler takes on, failures included.  Once that many are
taken, the pages still to come are fetched but not parsed: their links could
add nothing.  With one worker the order is predictable, so three pages are the
home page and its first two links:

>>> result = await crawl(f"{base_url}/site/", max_pages=3, concurrency=1)
>>> show(result.visited)
/site/
/site/about.html
/site/blog/

Only ``http`` and ``https`` links to the start URL's origin, its scheme,
host and port, are followed: from ``http://example.com/``, neither
``https://example.com/`` nor ``http://example.com:8080/`` is in scope.
``allowed_hosts`` adds others: in ``{"docs.example.com",
"example.com:8443"}``, a host name alone allows every port and both schemes
of that host, and ``host:port`` that port with either scheme.  A redirect
is checked against the same rules as a link.

Respecting robots.txt
---------------------

.. index::
   single: robots.txt
   pair: urllib.robotparser; blocking the event loop

Before the first request to a host, :func:`crawl` fetches that host's
``/robots.txt`` once (one lock per host keeps concurrent workers from
fetching it twice) and asks :class:`urllib.robotparser.RobotFileParser`
about every URL.  A disallowed URL is not requested; its error is ``blocked
by robots.txt``.  A missing robots.txt (a 4xx status) allows everything, as
RFC 9309 says, except that 401 and 403, a file locked away, are read as
"disallow everything", the cautious choice that
:mod:`urllib.robotparser` makes too.  A 5xx status, a timeout or a
connection error also disallow everything on that host: RFC 9309 treats an
unreachable robots.txt as a complete disallow, since the site may be in
trouble.  The rules are matched against the normalised URL, the one that
is then sent, and also against the path as servers that tidy it up would
read it: many (nginx, by default) serve ``//private/x`` as ``/private/x``,
and some decode ``%2F`` before resolving ``..``, which makes
``/a/..%2Fprivate/x`` the same page.  A URL is refused if any reading of it
is.  ``respect_robots=False`` skips all of it, for your own
sites.  (The demo server has no robots.txt, so above everything,
``/site/private/`` included, was allowed.)

.. important::

   :meth:`RobotFileParser.read() <urllib.robotparser.RobotFileParser.read>`
   downloads with :mod:`urllib.request`, which blocks the whole event loop
   for as long as the server takes to answer, and has no timeout.  Download
   the file with the crawler's own session, as here, and hand the text to
   :meth:`~urllib.robotparser.RobotFileParser.parse`.  ``Crawl-delay`` is not
   honoured; add a per-host pause if the sites you crawl ask for one.

Bounding every request
----------------------

.. index::
   pair: aiohttp; ClientTimeout
   single: response size limit
   single: gzip bomb

Each request has a total timeout (``timeout`` seconds, an
:class:`aiohttp.ClientTimeout` covering connecting, the headers and the
body), so a server that stops answering costs ``timeout`` and no more:
``/site/slow.html`` above ended as ``timeout`` after 0.5 seconds
(:ref:`recipes/http_client:Setting timeouts` tells aiohttp's timeouts
apart).  Bodies are read in chunks and abandoned once they pass
``max_bytes`` (5 MiB by default; the count is of decompressed bytes, so a
small gzip bomb is caught too): the 6 MiB page ended as ``too large``.
Only ``text/html`` answers are read at all (``not HTML``), and any status
other than 2xx or a redirect is an error (``HTTP 404``).

Following redirects by hand
---------------------------

.. index::
   pair: aiohttp; redirects
   single: redirect loop

aiohttp follows redirects on its own, but it would follow them to any host,
fetch pages the crawler has already seen, and hand back the final page as
if it lived at the URL of the link.
:func:`crawl` asks for ``allow_redirects=False`` and handles each hop like a
link: the target is normalised, it must pass the host rules and robots.txt,
it is claimed in the seen-set (so it is fetched once, even when it is also
linked directly), and at most ``max_redirects`` hops are followed from one
URL.
``redirects`` maps each redirecting URL to its target:

>>> result = await crawl(f"{base_url}/site/moved.html", max_depth=0)
>>> for source, target in result.redirects.items():
...     print(source.replace(base_url, ""), "->", target.replace(base_url, ""))
/site/moved-again.html -> /site/contact.html
/site/moved.html -> /site/moved-again.html
>>> show(result.visited)
/site/contact.html

A chain that comes back to where it started (``/loop-a.html`` to
``/loop-b.html`` and back, above) ends in ``redirect loop`` for each URL on
it, and a redirect to another host in ``redirect off-site``.

Parsing off the event loop
--------------------------

.. index::
   pair: CPU-bound work; executor
   pair: ProcessPoolExecutor; spawn
   single: GIL
   single: if __name__ == "__main__"
   single: warnings; Executing <Task ...> took ... seconds

BeautifulSoup builds its tree in Python, and holds the GIL while it does.
:func:`extract_links` already does the least it can: it parses with
``lxml`` (the fastest parser BeautifulSoup offers, and the same links on
every Python) and builds only the ``<a>``, ``<area>`` and ``<base>`` tags
(a ``SoupStrainer``); that still costs about half a millisecond of CPU for a
9 KB page, and far more for a large one.  On the event loop, no other task
would run meanwhile: no response is read, and the timeouts of other
requests fire because of the crawler's own slowness.  So :func:`crawl`
parses in an executor, the loop's default thread pool unless you pass one
as ``executor``.  Which executor, and how the pages reach it, decide how
fast the crawl goes:

* A thread keeps the loop responsive, but does not make parsing faster:
  only one thread runs Python code at a time.  And every hand-over costs a
  thread switch and a turn of the GIL: the first version of this recipe
  handed each page to the thread pool on its own, and the parsing threads
  and the loop spent so much time passing the GIL back and forth that the
  crawl took twice as long as it does now (in most runs: the effect comes
  and goes).  :func:`crawl` hands over the pages that wait together, up to
  16 pages or 1 MiB at a time, one batch at a time for threads.
* Other processes parse on other CPUs while the loop makes requests; a
  hand-over then costs pickling and a round trip through a pipe, and the
  batches (one in flight per CPU) keep those few.  :func:`parse_pool` makes
  a process pool to pass as ``executor``, and
  :func:`default_parse_processes` says how many processes make sense: one
  per CPU but one, and none on a single CPU.  The command line does this by
  itself.  In a program of your own (a file, not the REPL: the pool's
  processes import it again)::

    import asyncio

    from recipes.crawler import crawl, default_parse_processes, parse_pool

    def main() -> None:
        processes = default_parse_processes()
        pool = parse_pool(processes) if processes else None
        try:
            result = asyncio.run(crawl("https://example.com/", executor=pool))
        finally:
            if pool is not None:
                pool.shutdown()
        print(len(result.visited), "pages")

    if __name__ == "__main__":  # the pool's processes skip this
        main()

Parsing what cannot add a page is skipped too: once the crawl has taken on
``max_pages`` URLs, the pages still to come are fetched but not parsed.

On the crawler benchmark of the :doc:`/performance` page (1,000 pages of
9 KB, each answered after 20 ms, 50 workers, ``max_pages=1000``, 2 CPUs
shared with the local server), the network floor is 0.4 s, and a crawl with
no parsing at all takes 0.5 s (the start page, then its links, then theirs:
the first rounds cannot use all 50 workers).  Parsed in a pool of one
process, the crawl takes 0.57 s (1.4x the floor, 37x faster than one page at
a time); parsed in batches in a thread, 0.63 s (1.6x); handing each page to
a thread on its own, as the first version did, 0.98 s (2.3x).  With a budget
above the site's size, so that every page is parsed, the pool takes 0.87 s
(2.2x) and the thread 1.04 s (2.6x): BeautifulSoup's half a second of CPU
for the 1,000 pages, the crawler's own requests and the server then share
two CPUs.  (Medians of five runs on Python 3.15 with little other work on
the machine; with more, every figure grows.)

.. important::

   In debug mode (``PYTHONASYNCIODEBUG=1`` or ``asyncio.run(...,
   debug=True)``) parsing on the loop shows up as ``Executing <Task pending
   name='Task-3' ...> took 0.312 seconds``: the loop was blocked that long.
   And a process pool needs the ``if __name__ == "__main__":`` guard above:
   ``spawn`` (which :func:`parse_pool` uses) and ``forkserver`` (the
   default on Linux from Python 3.14) import the main script again in each
   new process, and without the guard each of them runs the script's
   top-level code, crawl included, before failing.

.. versionadded:: 3.9

   ``await asyncio.to_thread(extract_links, body, url)`` is a shorter way to
   run a function in the default thread pool.  :func:`crawl` uses
   ``run_in_executor``, which also works on Python 3.8, and takes any
   executor.  For one blocking call now and then, rather than a stream of
   pages, :func:`recipes.coroutines.run_in_thread` (see
   :ref:`recipes/coroutines:Running blocking code off the loop`) is all you
   need, on every version.

Surviving failures and cancellation
-----------------------------------

.. index::
   pair: cancellation; crawler

Each page is handled inside its own ``try``: whatever goes wrong with it, a
timeout, a reset connection or a bug in parsing, becomes an entry in
``errors`` and the worker moves on to the next URL.  Cancelling the crawl
cancels and awaits every worker, waits for the pages still being parsed in
an executor, and closes the session if :func:`crawl` opened it, so nothing
keeps running in the background.  (It cancels and awaits the workers as
:func:`recipes.cancellation.cancel_and_wait` does, with a copy of its own so
that the module needs nothing else from the cookbook.)

>>> task = asyncio.create_task(crawl(f"{base_url}/site/", timeout=5))
>>> await asyncio.sleep(0.1)
>>> task.cancel()
True
>>> try:
...     await task
... except asyncio.CancelledError:
...     print("cancelled: workers stopped, session closed")
cancelled: workers stopped, session closed

Watching progress
-----------------

.. index::
   single: progress callback

``progress`` is called with a :class:`CrawlEvent` each time a URL is done.
Here one worker crawls the blog and the pages it links to:

>>> def report(event):
...     path = event.url.replace(base_url, "")
...     print(f"[{event.done}/{event.found}] {event.status} {path}")
>>> result = await crawl(
...     f"{base_url}/site/blog/", max_depth=1, concurrency=1, progress=report
... )
[1/5] 200 /site/blog/
[2/5] 200 /site/blog/first-post.html
[3/5] 200 /site/blog/second-post.html
[4/5] 200 /site/
[5/5] 200 /site/about.html

Crawling from the command line
------------------------------

.. index::
   pair: command line; crawler

``python -m recipes.crawler URL`` runs :func:`crawl`, reports each URL on
stderr as it is done (``[done/found] status URL``), and ends with a
summary: pages visited, errors grouped by reason, time taken.  Against the
example site served on its own (``python -m tests.crawl_site``), where
robots.txt does disallow ``/private/``::

    $ python -m recipes.crawler http://127.0.0.1:8081/ --timeout 0.5
    [1/14] 200 http://127.0.0.1:8081/
    [2/15] 301 http://127.0.0.1:8081/moved.html -> http://127.0.0.1:8081/moved-again.html
    [3/16] 302 http://127.0.0.1:8081/loop-a.html -> http://127.0.0.1:8081/loop-b.html
    [4/16] 302 http://127.0.0.1:8081/away.html (redirect off-site)
    [5/16] 404 http://127.0.0.1:8081/missing.html (HTTP 404)
    [6/16] 500 http://127.0.0.1:8081/broken.html (HTTP 500)
    [7/16] --- http://127.0.0.1:8081/private/ (blocked by robots.txt)
    ...
    [20/20] --- http://127.0.0.1:8081/slow.html (timeout)
    crawled http://127.0.0.1:8081/ in 0.53 s
    8 pages visited, 10 errors, 2 redirects
    errors by reason:
      not HTML (2)
        http://127.0.0.1:8081/data.json
        http://127.0.0.1:8081/logo.png
      redirect loop (2)
        http://127.0.0.1:8081/loop-a.html
        http://127.0.0.1:8081/loop-b.html
      HTTP 404 (1)
        http://127.0.0.1:8081/missing.html
    ...

``--json`` prints the result on stdout instead, for scripts (the summary
moves to stderr; ``-q`` drops the progress lines)::

    $ python -m recipes.crawler http://127.0.0.1:8081/ --timeout 0.5 --json -q 2>/dev/null
    {
      "start_url": "http://127.0.0.1:8081/",
      "visited": [
        "http://127.0.0.1:8081/",
        "http://127.0.0.1:8081/about.html",
        ...
      ],
      "errors": {
        "http://127.0.0.1:8081/away.html": "redirect off-site",
        ...
      },
      "redirects": {...},
      "elapsed_seconds": 0.531
    }

``--max-depth``, ``--max-pages``, ``--concurrency``, ``--timeout``,
``--allow-host`` and ``--ignore-robots`` map to the arguments of
:func:`crawl`; ``--processes N`` parses the pages in N other processes (by
default :func:`default_parse_processes`, ``0`` for none); a bad value exits
with status 2 and a message, and a crawl that visited no page at all exits
with status 1.

Putting it together
-------------------

A small link checker: crawl one link deep, collect every event,
and count the broken pages by reason.  Each URL taken on produces exactly one
event and lands in exactly one of ``visited``, ``errors`` and ``redirects``:

>>> from collections import Counter
>>> events = []
>>> result = await crawl(
...     f"{base_url}/site/", max_depth=1, timeout=0.5, progress=events.append
... )
>>> taken = len(result.visited) + len(result.errors) + len(result.redirects)
>>> len(events) == taken
True
>>> Counter(result.errors.values()).most_common(3)
[('not HTML', 2), ('redirect loop', 2), ('redirect off-site', 1)]

A library does this
-------------------

.. index::
   single: Scrapy
   single: crawlee
   pair: web crawler; libraries

* `Scrapy <https://docs.scrapy.org/>`__ is a crawling framework built on
  Twisted; its default reactor runs on asyncio, so callbacks may be
  ``async def``, and ``AsyncCrawlerRunner`` runs spiders inside an asyncio
  program.  What this chapter builds are settings there: ``ROBOTSTXT_OBEY``,
  ``DEPTH_LIMIT``, ``CLOSESPIDER_PAGECOUNT``, ``DOWNLOAD_TIMEOUT``,
  ``DOWNLOAD_MAXSIZE``, ``CONCURRENT_REQUESTS_PER_DOMAIN``, a duplicate
  filter, and middlewares for redirects and retries.  It adds AutoThrottle,
  an HTTP cache, item pipelines and feed exports (JSON, CSV).  You write
  spiders the framework calls, and learn its settings, signals and
  middlewares.
* `crawlee for Python <https://crawlee.dev/python>`__ is asyncio-native, with
  crawlers that parse with BeautifulSoup or Parsel, or drive a browser with
  Playwright.  It has ``max_requests_per_crawl``, ``max_crawl_depth``,
  ``respect_robots_txt_file`` and ``max_request_retries``, a request queue
  that drops repeated URLs, and a pool that scales concurrency with CPU and
  memory load.  By default it keeps its queue and results in a ``./storage``
  folder, and it parses HTML in a thread (:func:`asyncio.to_thread`), not in
  other processes.

Choose a library for large or recurring crawls, JavaScript pages, exports or
caching.  Copy :func:`crawl` for one function with no framework: plain
asyncio you can change line by line, parsing in other processes if you pass
a process pool, and the results as one :class:`CrawlResult`.

See also
--------

* :doc:`/recipes/queues`: queues, worker pools and how to stop them.
* :doc:`/recipes/limiting`: semaphores and :func:`~recipes.limiting.bounded_gather`,
  for a list of jobs known in advance.
* :doc:`/recipes/http_client`: sessions, timeouts, error statuses and retries
  with aiohttp.
* :doc:`/recipes/cancellation` and :doc:`/recipes/timeouts`: how the crawl
  stops, and how each request is bounded.
* :doc:`/recipes/coroutines`: why CPU-bound work stalls the loop, and how to
  move it off.
* Python: :doc:`python:library/asyncio-queue`, :ref:`python:asyncio-handle-blocking`,
  :meth:`asyncio.loop.run_in_executor`, :mod:`concurrent.futures` and
  :mod:`urllib.robotparser`.
* aiohttp: :doc:`aiohttp:client_quickstart` and :doc:`aiohttp:client_advanced`
  (timeouts, redirects, connection limits).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import json
import math
import multiprocessing
import os
import re
import signal
import sys
import time
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    TextIO,
    Tuple,
    Union,
)
from urllib.parse import quote, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import aiohttp
from bs4 import BeautifulSoup, Tag
from bs4.filter import SoupStrainer
from yarl import URL

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "CrawlEvent",
    "CrawlResult",
    "crawl",
    "default_parse_processes",
    "extract_links",
    "main",
    "normalize_url",
    "parse_pool",
]

#: Seconds allowed for each request: connecting, headers and body together.
DEFAULT_TIMEOUT = 10.0
#: Bodies longer than this (after decompression) are abandoned: 5 MiB.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
#: Redirect hops followed from one URL.
DEFAULT_MAX_REDIRECTS = 5
#: Sent as ``User-Agent`` and matched against robots.txt rules.
DEFAULT_USER_AGENT = "asyncio-cookbook-crawler/1.0"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
# What one hand-over to the executor that parses the pages carries at most.
_BATCH_PAGES = 16
_BATCH_BYTES = 1024 * 1024


def normalize_url(url: str) -> str:
    """Return the one spelling of ``url`` that the crawler checks, remembers and requests.

    >>> from recipes.crawler import normalize_url
    >>> normalize_url("HTTP://Example.COM:80/docs/./api/../#install")
    'http://example.com/docs/'

    This is the normalisation of RFC 3986 (section 6.2.2) plus the rules of
    ``http`` and ``https``: the scheme and host are lower-cased (a
    non-ASCII host is IDNA-encoded), a default port is dropped, an empty
    path becomes ``/``, the dot segments ``.`` and ``..`` are resolved, and
    percent-encoding is made uniform: escapes of letters, digits and
    ``-._~`` are decoded, the others get upper-case hex digits, and
    characters that may not appear in a URL (spaces, non-ASCII) are encoded
    as UTF-8.  The fragment and credentials go.  Everything else in the
    path and query is kept as written, since servers may treat it as case
    sensitive:

    >>> normalize_url("https://ann:pw@example.com:8443/%7eAnn/caf%c3%a9 x?Q=2")
    'https://example.com:8443/~Ann/caf%C3%A9%20x?Q=2'

    Two slashes in a row are kept: to RFC 3986 ``/a//b`` and ``/a/b`` are
    different URLs.

    Anything but an absolute ``http`` or ``https`` URL is a
    :exc:`ValueError`, which is how the crawler skips ``mailto:`` links and
    broken addresses:

    >>> normalize_url("mailto:webmaster@example.com")
    Traceback (most recent call last):
    ...
    ValueError: not an http:// or https:// URL: 'mailto:webmaster@example.com'
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    parts = urlsplit(url.strip())  # ValueError for e.g. "http://[::1"
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        hint = f" (did you mean 'http://{url.strip()}'?)" if not parts.scheme else ""
        raise ValueError(f"not an http:// or https:// URL: {url!r}{hint}")
    host = parts.hostname  # lower-case, without the [] of IPv6
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    netloc = _normalize_host(host, url)
    port = parts.port  # ValueError when out of range
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = _remove_dot_segments(_normalize_escapes(parts.path or "/"))
    query = _normalize_escapes(parts.query)
    return f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}"


# Characters that may stand for themselves in a path or query (RFC 3986
# section 3.3, 3.4): unreserved, sub-delims, ":", "@", "/" and "?".
_URL_SAFE = "A-Za-z0-9._~!$&'()*+,;=:@/?-"
_CLEAN = re.compile(f"[{_URL_SAFE}]*")
_ESCAPE_OR_UNSAFE = re.compile(f"%[0-9A-Fa-f]{{2}}|[^{_URL_SAFE}]")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HOST_NAME = re.compile(r"[a-z0-9._~!$&'()*+,;=-]+")
_SLASHES = re.compile(r"//+")
# Only the tags that carry links are built into the tree: less work in Python.
_ONLY_LINKS = SoupStrainer(["a", "area", "base"])
_LINK_TAGS = frozenset(["a", "area", "base"])


def _normalize_escape(match: re.Match[str]) -> str:
    text = match.group()
    if text[0] == "%" and len(text) == 3:
        char = chr(int(text[1:], 16))
        return char if char in _UNRESERVED else text.upper()
    return quote(text, safe="")  # as UTF-8; a "%" without two hex digits becomes %25


def _normalize_escapes(text: str) -> str:
    """Uniform percent-encoding for a path or query (RFC 3986, section 6.2.2.2)."""
    if _CLEAN.fullmatch(text):  # the common case: nothing to do
        return text
    return _ESCAPE_OR_UNSAFE.sub(_normalize_escape, text)


def _remove_dot_segments(path: str) -> str:
    """Resolve ``.`` and ``..`` in an absolute path (RFC 3986, section 5.2.4)."""
    if "/." not in path:
        return path
    segments = path.split("/")[1:]
    kept: List[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # "/a/b/.." is the directory "/a/"
    return "/" + "/".join(kept)


def _normalize_host(host: str, url: str) -> str:
    """The host as it goes into a normalised URL: IDNA for names, [] for IPv6."""
    if ":" in host:
        if "%" in host:  # a zone ID ("fe80::1%eth0") means nothing on another machine
            raise ValueError(f"URL has a bad IPv6 address: {url!r}")
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise ValueError(f"URL has a bad IPv6 address: {url!r}") from None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"URL has a bad host name: {url!r}") from None
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"URL has a bad host name: {url!r}")
    return host


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a normalised URL."""
    return url[: url.index("/", url.index("//") + 2)]


def _request_url(url: str) -> URL:
    """A normalised URL as aiohttp must send it: as it is (``encoded=True``).

    Given a plain string, aiohttp normalises it again in its own way (yarl
    resolves dot segments and decodes escapes), and the server would then be
    asked for another URL than the one checked against robots.txt.
    """
    return URL(url, encoded=True)


def extract_links(
    page: Union[str, bytes], base_url: str, *, encoding: Optional[str] = None
) -> List[str]:
    """Return the normalised ``http(s)`` links of an HTML page, in document order.

    >>> from recipes.crawler import extract_links
    >>> page = ('<a href="b.html#top">B</a> <a href="/c">C</a>'
    ...         ' <a href="b.html">B</a>')
    >>> extract_links(page, "http://example.com/a/")
    ['http://example.com/a/b.html', 'http://example.com/c']

    Relative links are resolved against ``base_url``, or against the page's
    ``<base href>`` when it has one; duplicates, fragments, ``mailto:`` and
    ``javascript:`` links and malformed addresses are dropped.  The parser
    (``lxml``, through BeautifulSoup) copes with tag soup:

    >>> soup = ('<base href="/docs/"><p>Unclosed <a href=guide.html>guide'
    ...         '<a href="mailto:x@example.com">mail</a>'
    ...         '<a href="http://[::1">bad</a>')
    >>> extract_links(soup, "http://example.com/")
    ['http://example.com/docs/guide.html']

    It reads HTML the way browsers do, and so does not find links that a
    browser would not show.  The text of ``<title>`` and ``<textarea>`` runs
    up to their closing tag, so a page whose ``<title>`` is never closed has
    no visible body and no links:

    >>> extract_links('<title>Oops</head><body><a href="/a">A</a>',
    ...               "http://example.com/")
    []

    .. versionchanged:: 3.14
       The standard library's ``html.parser`` reads ``<title>`` and
       ``<textarea>`` that way too (CPython gh-118350); before, it ended them
       at the next tag.  The recipe parses with ``lxml`` rather than
       ``html.parser`` so that the links it finds do not depend on the Python
       version.  If you switch a BeautifulSoup program to ``"html.parser"``,
       expect such pages to lose their links on 3.14 and later.

    ``page`` may be the raw bytes of a response; ``encoding`` (the charset
    of its ``Content-Type``, if any) is then a hint, and BeautifulSoup
    detects the encoding when it is missing or wrong.  The function is
    synchronous and CPU-bound: :func:`crawl` runs it in a thread, or in
    another process.
    """
    if isinstance(page, bytes):
        soup = BeautifulSoup(page, "lxml", parse_only=_ONLY_LINKS, from_encoding=encoding)
    else:
        soup = BeautifulSoup(page, "lxml", parse_only=_ONLY_LINKS)
    base: Optional[str] = None
    hrefs: List[str] = []
    # The soup holds little but the three tags: one walk finds them, in document order.
    for tag in soup.descendants:
        if not isinstance(tag, Tag) or tag.name not in _LINK_TAGS:
            continue
        href = tag.get("href")
        if not isinstance(href, str):
            continue
        if tag.name != "base":
            hrefs.append(href)
        elif base is None:  # the first <base href> applies to the whole page
            try:
                base = urljoin(base_url, href.strip())
            except ValueError:
                base = base_url
    links: Dict[str, None] = {}  # a dict keeps the first occurrence's order
    for href in hrefs:
        try:
            links[normalize_url(urljoin(base or base_url, href.strip()))] = None
        except ValueError:  # mailto:, javascript:, "http://[::1", port 99999...
            continue
    return list(links)


@dataclass(frozen=True)
class CrawlResult:
    """What :func:`crawl` found: pages visited, errors and redirects.

    Every URL the crawler took on ends up in exactly one of the three.  The
    dictionaries are sorted by URL:

    >>> from recipes.crawler import crawl
    >>> result = await crawl(f"{base_url}/site/missing.html")
    >>> result.visited, result.errors
    (frozenset(), {'http://127.0.0.1:.../site/missing.html': 'HTTP 404'})
    """

    #: The start URL, normalised.
    start_url: str
    #: Pages fetched as HTML (absolute, normalised URLs); parsed unless the
    #: crawl had already taken on ``max_pages`` URLs when they arrived.
    visited: FrozenSet[str]
    #: URL -> reason, e.g. ``"HTTP 404"``, ``"timeout"``, ``"too large"``,
    #: ``"not HTML"``, ``"redirect loop"``, ``"too many redirects"``,
    #: ``"redirect off-site"``, ``"blocked by robots.txt"``,
    #: ``"connection error: ClientConnectorError"``.
    errors: Dict[str, str]
    #: URL -> the URL it redirected to, for every redirect that was followed.
    redirects: Dict[str, str]


@dataclass(frozen=True)
class CrawlEvent:
    """What :func:`crawl` tells its ``progress`` callback each time a URL is done."""

    #: The URL just handled.
    url: str
    #: Its depth: links from the start page (a redirect keeps the depth).
    depth: int
    #: The HTTP status of the answer, or None without one (timeout, robots.txt).
    status: Optional[int]
    #: Why the URL failed, or None.
    error: Optional[str]
    #: Where the URL redirected to, or None.
    redirect: Optional[str]
    #: URLs handled so far, this one included.
    done: int
    #: URLs found so far (handled, queued or in progress); at most ``max_pages``.
    found: int


ProgressCallback = Callable[[CrawlEvent], None]


async def crawl(
    start_url: str,
    *,
    max_depth: int = 2,
    max_pages: int = 100,
    concurrency: int = 10,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_hosts: Optional[Iterable[str]] = None,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    respect_robots: bool = True,
    user_agent: str = DEFAULT_USER_AGENT,
    session: Optional[aiohttp.ClientSession] = None,
    progress: Optional[ProgressCallback] = None,
    executor: Optional[Executor] = None,
) -> CrawlResult:
    """Crawl from ``start_url`` and return the pages visited and the errors met.

    >>> from recipes.crawler import crawl
    >>> result = await crawl(f"{base_url}/site/chain/1.html", max_depth=2)
    >>> sorted(url.replace(base_url, "") for url in result.visited)
    ['/site/chain/1.html', '/site/chain/2.html', '/site/chain/3.html']

    At most ``concurrency`` requests are in flight and at most ``max_pages``
    URLs are taken on; pages up to ``max_depth`` links from the start page
    are fetched.  ``timeout`` (seconds) and ``max_bytes`` bound each request,
    ``max_redirects`` each redirect chain.  Links are followed to the start
    URL's host and to ``allowed_hosts`` only.  ``progress`` is called with a
    :class:`CrawlEvent` after each URL; an exception it raises stops the
    crawl and propagates.  Pages are parsed in ``executor``, in batches: the
    loop's default thread pool when None, or a :func:`parse_pool` to use
    other CPUs; :func:`crawl` leaves it running when it returns.

    :func:`crawl` opens and closes its own :class:`aiohttp.ClientSession`
    unless you pass ``session``, which it uses and leaves open.  Its requests
    carry their own timeout, ``User-Agent`` and redirect handling, whatever
    the session's defaults:

    >>> import aiohttp
    >>> async with aiohttp.ClientSession() as session:
    ...     about = f"{base_url}/site/about.html"
    ...     result = await crawl(about, max_depth=0, session=session)
    ...     print(session.closed, len(result.visited))
    False 1

    Bad arguments are refused before anything is fetched:

    >>> await crawl("ftp://example.com/")
    Traceback (most recent call last):
    ...
    ValueError: start_url: not an http:// or https:// URL: 'ftp://example.com/'
    """
    start = _check_start_url(start_url)
    _check_int("max_depth", max_depth, 0)
    _check_int("max_pages", max_pages, 1)
    _check_int("concurrency", concurrency, 1)
    _check_int("max_bytes", max_bytes, 1)
    _check_int("max_redirects", max_redirects, 0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a finite number > 0 of seconds, got {timeout!r}")
    scope = _check_hosts(allowed_hosts, start)
    if not isinstance(user_agent, str):
        raise TypeError(f"user_agent must be a str, got {user_agent!r}")
    if not user_agent.strip():
        raise ValueError(f"user_agent must not be empty, got {user_agent!r}")
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise TypeError(f"session must be an aiohttp.ClientSession, got {session!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable or None, got {progress!r}")
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {executor!r}")

    options = _Options(
        max_depth=max_depth,
        max_pages=max_pages,
        concurrency=concurrency,
        timeout=aiohttp.ClientTimeout(total=timeout),
        max_bytes=max_bytes,
        scope=scope,
        max_redirects=max_redirects,
        respect_robots=bool(respect_robots),
        user_agent=user_agent,
        progress=progress,
        executor=executor,
    )
    if session is not None:
        return await _Crawler(options, session).run(start)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as own_session:
        return await _Crawler(options, own_session).run(start)


# --- argument checks -------------------------------------------------------


def _check_start_url(start_url: object) -> str:
    if not isinstance(start_url, str):
        raise TypeError(f"start_url must be a str, got {type(start_url).__name__}")
    try:
        return normalize_url(start_url)
    except ValueError as exc:
        raise ValueError(f"start_url: {exc}") from None


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_hosts(allowed_hosts: Optional[Iterable[str]], start: str) -> _Scope:
    hosts: Set[str] = set()
    host_ports: Set[Tuple[str, int]] = set()
    if isinstance(allowed_hosts, (str, bytes)):
        raise TypeError(
            "allowed_hosts must be a collection of host names, such as {'example.com'}, "
            f"not a single {type(allowed_hosts).__name__}"
        )
    for entry in allowed_hosts or ():
        try:
            if not isinstance(entry, str) or not entry.strip() or "/" in entry:
                raise ValueError
            parts = urlsplit(f"//{entry.strip()}")
            host = _normalize_host(parts.hostname or "", entry)
            port = parts.port  # ValueError when out of range
        except ValueError:
            raise ValueError(
                "allowed_hosts takes host names such as 'example.com' or 'example.com:8443', "
                f"got {entry!r}"
            ) from None
        if port is None:
            hosts.add(host)
        else:
            host_ports.add((host, port))
    return _Scope(origin=_origin(start), hosts=frozenset(hosts), host_ports=frozenset(host_ports))


@dataclass(frozen=True)
class _Scope:
    """Where links may lead: the start URL's origin, and the hosts allowed besides."""

    origin: str  # scheme://host[:port] of the start URL, normalised
    hosts: FrozenSet[str]  # every scheme and port of these hosts
    host_ports: FrozenSet[Tuple[str, int]]  # this port of this host, either scheme

    def allows(self, url: str) -> bool:
        """Whether the normalised ``url`` is in scope."""
        origin = _origin(url)
        if origin == self.origin:
            return True
        if not self.hosts and not self.host_ports:
            return False
        parts = urlsplit(origin)
        host = _normalize_host(parts.hostname or "", url)
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        return host in self.hosts or (host, port) in self.host_ports


# --- the crawler -----------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    max_depth: int
    max_pages: int
    concurrency: int
    timeout: aiohttp.ClientTimeout
    max_bytes: int
    scope: _Scope
    max_redirects: int
    respect_robots: bool
    user_agent: str
    progress: Optional[ProgressCallback]
    executor: Optional[Executor]


@dataclass(frozen=True)
class _Outcome:
    """How one request ended: parsed (``links``), redirected, or failed."""

    status: Optional[int] = None
    error: Optional[str] = None
    redirect: Optional[str] = None
    follow: bool = False  # this chain claimed the redirect target: fetch it next
    links: Optional[List[str]] = None


@dataclass(frozen=True)
class _Robots:
    """One host's robots.txt: its rules, or why the whole host is off limits."""

    parser: Optional[RobotFileParser] = None
    refusal: Optional[str] = None

    def refuses(self, user_agent: str, url: str) -> Optional[str]:
        """Why the normalised ``url`` may not be fetched, or None."""
        if self.refusal is not None:
            return self.refusal
        if self.parser is None:
            return None
        origin = _origin(url)
        for path in _server_readings(url[len(origin) :]):
            if not self.parser.can_fetch(user_agent, origin + path):
                return "blocked by robots.txt"
        return None


def _server_readings(path: str) -> Set[str]:
    """A normalised path and query, and how servers that tidy it up would read it.

    Many servers (nginx, for one) merge "//" into "/", and some decode "%2F"
    and then resolve "..": "/a/..%2Fprivate/" can be "/private/" to them.
    """
    readings = {path}
    path, mark, query = path.partition("?")
    merged = _SLASHES.sub("/", path)
    readings.add(merged + mark + query)
    if "%2F" in path:
        decoded = _SLASHES.sub("/", path.replace("%2F", "/"))
        readings.add(_remove_dot_segments(decoded) + mark + query)
    return readings


_Page = Tuple[bytes, str, Optional[str]]  # body, URL, charset


def _extract_links_of_pages(pages: List[_Page]) -> List[Union[List[str], Exception]]:
    """:func:`extract_links` for several pages: the links of each, or what it raised."""
    results: List[Union[List[str], Exception]] = []
    for body, url, encoding in pages:
        try:
            results.append(extract_links(body, url, encoding=encoding))
        except Exception as exc:  # that page fails, the others do not
            results.append(exc)
    return results


def _available_cpus() -> int:
    """The CPUs this process may run on (``os.process_cpu_count()`` on 3.13+)."""
    count = getattr(os, "process_cpu_count", None)
    if count is not None:
        return int(count() or 1)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _settle(
    batch: List[Tuple[_Page, asyncio.Future[List[str]]]],
    outcome: Union[List[Union[List[str], Exception]], BaseException],
) -> None:
    """Give each page's future its links or its exception: one per page, or one for all."""
    for index, (_, future) in enumerate(batch):
        if future.done():  # its worker has gone
            continue
        result = outcome[index] if isinstance(outcome, list) else outcome
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class _Parser:
    """Runs :func:`extract_links` for the workers in an executor, several pages at a time.

    Every hand-over to an executor costs CPU time in the crawler's process: a
    thread switch (and a turn of the GIL), and for a process pool also
    pickling and a round trip through a pipe.  So pages that arrive while the
    executor is busy wait and then go together, up to ``_BATCH_PAGES`` pages
    or ``_BATCH_BYTES`` bytes in one call.  Threads get one batch at a time,
    since the GIL runs one anyway; other executors one per CPU.
    """

    def __init__(self, executor: Optional[Executor]) -> None:
        self.executor = executor  # None: the loop's default thread pool
        self.waiting: Deque[Tuple[_Page, asyncio.Future[List[str]]]] = deque()
        self.batches: Set[asyncio.Future[Any]] = set()
        threads = executor is None or isinstance(executor, ThreadPoolExecutor)
        self.max_batches = 1 if threads else _available_cpus()
        self.closed = False

    async def links(self, body: bytes, url: str, encoding: Optional[str]) -> List[str]:
        future: asyncio.Future[List[str]] = asyncio.get_running_loop().create_future()
        self.waiting.append(((body, url, encoding), future))
        self._hand_over()
        return await future

    def _hand_over(self) -> None:
        loop = asyncio.get_running_loop()
        while self.waiting and len(self.batches) < self.max_batches and not self.closed:
            batch: List[Tuple[_Page, asyncio.Future[List[str]]]] = []
            size = 0
            while self.waiting and len(batch) < _BATCH_PAGES:
                page, future = self.waiting[0]
                if batch and size + len(page[0]) > _BATCH_BYTES:
                    break
                self.waiting.popleft()
                if not future.cancelled():  # else its worker has gone
                    batch.append((page, future))
                    size += len(page[0])
            if not batch:
                continue
            pages = [page for page, _ in batch]
            try:
                done = loop.run_in_executor(self.executor, _extract_links_of_pages, pages)
            except Exception as exc:  # e.g. RuntimeError: the executor was shut down
                _settle(batch, exc)
                continue
            self.batches.add(done)
            done.add_done_callback(functools.partial(self._deliver, batch))

    def _deliver(
        self, batch: List[Tuple[_Page, asyncio.Future[List[str]]]], done: asyncio.Future[Any]
    ) -> None:
        self.batches.discard(done)
        if done.cancelled():  # by the executor (a shutdown that cancels what waits)
            error: Optional[BaseException] = RuntimeError("the executor cancelled the parsing")
        else:
            error = done.exception()  # e.g. BrokenProcessPool: the whole batch fails
        _settle(batch, done.result() if error is None else error)
        self._hand_over()

    def close(self) -> List[asyncio.Future[Any]]:
        """Hand over nothing more; return the batches still running, to be awaited."""
        self.closed = True
        while self.waiting:
            self.waiting.popleft()[1].cancel()
        return list(self.batches)


class _Crawler:
    """The state of one crawl; nothing here outlives :func:`crawl`."""

    def __init__(self, options: _Options, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.session = session
        self.headers = {"User-Agent": options.user_agent}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.depths: Dict[str, int] = {}  # the seen-set: claimed URL -> fewest links from start
        self.links: Dict[str, List[str]] = {}  # parsed page -> its links within the rules
        self.visited: Set[str] = set()
        self.errors: Dict[str, str] = {}
        self.redirects: Dict[str, str] = {}
        self.robots: Dict[str, _Robots] = {}
        self.robots_locks: Dict[str, asyncio.Lock] = {}
        self.parser = _Parser(options.executor)
        self.done = 0
        self.progress_failed = False

    async def run(self, start: str) -> CrawlResult:
        self._claim(start, 0)  # queues it
        workers = [
            asyncio.ensure_future(self._work())
            for _ in range(min(self.options.concurrency, self.options.max_pages))
        ]
        joined = asyncio.ensure_future(self.queue.join())
        try:
            # A worker only ever finishes by failing; then join() would wait forever.
            await asyncio.wait([joined, *workers], return_when=asyncio.FIRST_COMPLETED)
            for worker in workers:
                if worker.done():
                    worker.result()  # re-raises what stopped it
        finally:
            # The workers, then any batch of pages still being parsed: nothing is left running.
            await _cancel_and_wait([joined, *workers], then=self.parser.close)
        return self._result(start)

    # The seen-set.  Nothing in _claim or _expand awaits, so checking a URL
    # and claiming it happen in one step that no other worker can split.

    def _claim(self, url: str, depth: int, *, enqueue: bool = True) -> bool:
        """Note that ``url`` is ``depth`` links away; True if it was new and is now ours."""
        known = self.depths.get(url)
        if known is None:
            if len(self.depths) >= self.options.max_pages:
                return False
            self.depths[url] = depth
            if enqueue:
                self.queue.put_nowait(url)
            return True
        if depth < known:  # a shorter path: the page's own links come closer too
            self.depths[url] = depth
            self._expand(url)
        return False

    def _expand(self, url: str) -> None:
        depth = self.depths[url]
        target = self.redirects.get(url)
        if target is not None:
            self._claim(target, depth)
        if depth < self.options.max_depth:
            for link in self.links.get(url, ()):
                self._claim(link, depth + 1)

    def _in_scope(self, url: str) -> bool:
        return self.options.scope.allows(url)

    # The workers.

    async def _work(self) -> None:
        while True:
            url = await self.queue.get()
            try:
                await self._handle(url)
            finally:
                self.queue.task_done()

    async def _handle(self, url: str) -> None:
        """Fetch ``url`` and, if it redirects to a page nobody else holds, that page too."""
        hops = 0
        current: Optional[str] = url
        while current is not None:
            try:
                outcome = await self._visit(current, hops)
            except Exception as exc:  # a bug or a surprise: this page fails, the crawl goes on
                outcome = _Outcome(error=f"unexpected error: {type(exc).__name__}: {exc}")
            self._record(current, outcome)  # may raise (the progress callback)
            current = outcome.redirect if outcome.follow else None
            hops += 1

    def _record(self, url: str, outcome: _Outcome) -> None:
        if outcome.links is not None:
            self.visited.add(url)
            self.links[url] = outcome.links
            self._expand(url)
        elif outcome.redirect is not None:
            self.redirects[url] = outcome.redirect
        else:
            self.errors[url] = outcome.error or "unknown error"
        self.done += 1
        if self.options.progress is None or self.progress_failed:
            return
        event = CrawlEvent(
            url=url,
            depth=self.depths[url],
            status=outcome.status,
            error=outcome.error,
            redirect=outcome.redirect,
            done=self.done,
            found=len(self.depths),
        )
        try:
            self.options.progress(event)
        except BaseException:
            # The crawl stops: no more events from the workers still finishing a page.
            self.progress_failed = True
            raise

    async def _visit(self, url: str, hops: int) -> _Outcome:
        if self.options.respect_robots:
            refusal = await self._robots_refusal(url)
            if refusal is not None:
                return _Outcome(error=refusal)
        try:
            async with self.session.get(
                _request_url(url),  # exactly the URL that robots.txt allowed
                allow_redirects=False,
                raise_for_status=False,
                timeout=self.options.timeout,
                headers=self.headers,
            ) as response:
                status = response.status
                if status in _REDIRECT_STATUSES:
                    return self._redirect(url, response, hops)
                if not 200 <= status < 300:
                    return _Outcome(status=status, error=f"HTTP {status}")
                if response.content_type != "text/html":
                    return _Outcome(status=status, error="not HTML")
                body, complete = await _read_at_most(response, self.options.max_bytes)
                if not complete:
                    return _Outcome(status=status, error="too large")
                encoding = response.charset
        except asyncio.TimeoutError:
            return _Outcome(error="timeout")
        except aiohttp.ClientError as exc:
            return _Outcome(error=f"connection error: {type(exc).__name__}")
        if len(self.depths) >= self.options.max_pages:
            # Every URL this crawl may take on is taken: the page's links can add no page,
            # so the CPU time of parsing it is saved (it is still a visited page).
            return _Outcome(status=status, links=[])
        links = await self.parser.links(body, url, encoding)
        return _Outcome(status=status, links=[link for link in links if self._in_scope(link)])

    def _redirect(self, url: str, response: aiohttp.ClientResponse, hops: int) -> _Outcome:
        status = response.status
        location = response.headers.get("Location", "")
        try:
            target = normalize_url(urljoin(url, location)) if location else None
        except ValueError:
            target = None
        if target is None:
            return _Outcome(status=status, error="bad redirect")
        if not self._in_scope(target):
            return _Outcome(status=status, error="redirect off-site")
        if hops >= self.options.max_redirects:
            return _Outcome(status=status, error="too many redirects")
        # Claimed, not queued: this chain fetches the target next, and nobody else will.
        claimed = self._claim(target, self.depths[url], enqueue=False)
        return _Outcome(status=status, redirect=target, follow=claimed)

    # robots.txt

    async def _robots_refusal(self, url: str) -> Optional[str]:
        origin = _origin(url)
        robots = self.robots.get(origin)
        if robots is None:
            lock = self.robots_locks.setdefault(origin, asyncio.Lock())
            async with lock:  # one download per host, however many workers ask
                robots = self.robots.get(origin)
                if robots is None:
                    robots = await self._fetch_robots(origin)
                    self.robots[origin] = robots
        return robots.refuses(self.options.user_agent, url)

    async def _fetch_robots(self, origin: str) -> _Robots:
        try:
            async with self.session.get(
                _request_url(f"{origin}/robots.txt"),
                raise_for_status=False,
                timeout=self.options.timeout,
                headers=self.headers,
                max_redirects=self.options.max_redirects,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    # Rules past the size cap are ignored, as RFC 9309 allows.
                    body, _ = await _read_at_most(
                        response, self.options.max_bytes, trust_length=False
                    )
                    parser = RobotFileParser()
                    parser.parse(body.decode("utf-8", errors="replace").splitlines())
                    return _Robots(parser=parser)
        except asyncio.TimeoutError:
            return _Robots(refusal="robots.txt unavailable (timeout)")
        except aiohttp.ClientError as exc:
            return _Robots(
                refusal=f"robots.txt unavailable (connection error: {type(exc).__name__})"
            )
        if status in (401, 403):
            return _Robots(refusal="blocked by robots.txt")
        if 400 <= status < 500:
            return _Robots()  # no robots.txt: everything is allowed
        return _Robots(refusal=f"robots.txt unavailable (HTTP {status})")

    # The result.

    def _result(self, start: str) -> CrawlResult:
        errors = dict(self.errors)
        redirects = dict(self.redirects)
        for url in _redirect_loops(redirects):
            errors[url] = "redirect loop"
            del redirects[url]
        return CrawlResult(
            start_url=start,
            visited=frozenset(self.visited),
            errors=dict(sorted(errors.items())),
            redirects=dict(sorted(redirects.items())),
        )


async def _read_at_most(
    response: aiohttp.ClientResponse, limit: int, *, trust_length: bool = True
) -> Tuple[bytes, bool]:
    """Read up to ``limit`` bytes of the body; the flag says whether that was all of it.

    With ``trust_length``, a Content-Length over the limit gives up at once.
    """
    if trust_length and response.content_length is not None and response.content_length > limit:
        return b"", False
    chunks: List[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK_SIZE):
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: limit - (size - len(chunk))])
            return b"".join(chunks), False
        chunks.append(chunk)
    return b"".join(chunks), True


def _redirect_loops(redirects: Dict[str, str]) -> Set[str]:
    """The URLs whose redirects, followed one after another, never reach a page."""
    looping: Set[str] = set()
    for start in redirects:
        seen = {start}
        url = redirects[start]
        while url in redirects and url not in seen:
            seen.add(url)
            url = redirects[url]
        if url in seen:
            looping.add(start)
    return looping


async def _cancel_and_wait(
    tasks: List[asyncio.Future[None]],
    then: Optional[Callable[[], List[asyncio.Future[Any]]]] = None,
) -> None:
    """Cancel ``tasks`` and wait until all have finished, even if cancelled meanwhile.

    ``then()``, called once they have, returns more futures to wait for (not cancel).
    """
    for task in tasks:
        task.cancel()
    interrupted = False
    pending: List[asyncio.Future[Any]] = [task for task in tasks if not task.done()]
    more = then
    while True:
        while pending:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                interrupted = True  # finish the clean-up first, then pass the cancellation on
            pending = [task for task in pending if not task.done()]
        if more is None:
            break
        pending, more = more(), None
    for task in tasks:
        if not task.cancelled():
            task.exception()  # already raised by run() if it mattered; mark it as seen
    if interrupted:
        raise asyncio.CancelledError


# --- parsing in other processes --------------------------------------------

_MAX_PROCESSES = 4


def default_parse_processes() -> int:
    """How many processes :func:`parse_pool` should start here: one per CPU but one.

    One CPU is left to the event loop, which has the requests to make; with
    a single CPU, other processes would only take turns with it, so the
    answer is 0: parse in the crawler's own process.  At most
    ``_MAX_PROCESSES``: at about half a millisecond a page, four processes
    parse several thousand pages a second, more than a polite crawler fetches.
    """
    return max(0, min(_available_cpus() - 1, _MAX_PROCESSES))


def parse_pool(processes: int) -> Executor:
    """A process pool to pass to :func:`crawl` as ``executor``: pages parsed on other CPUs.

    The processes are started with ``"spawn"``: ``fork`` copies a process that
    runs threads (the event loop's default thread pool, for one), which is
    unsafe and warns from 3.12 on.  They ignore Ctrl-C, which is the crawler's
    to handle: it cancels the crawl, which waits for the pages being parsed.
    Shut the pool down when done (``with parse_pool(n) as pool: ...``), and
    start it from code under ``if __name__ == "__main__":``: each new
    process imports the main script again.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(processes, mp_context=context, initializer=_ignore_ctrl_c)


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --- command line ----------------------------------------------------------


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _print_event(event: CrawlEvent) -> None:
    status = "---" if event.status is None else str(event.status)
    line = f"[{event.done}/{event.found}] {status} {event.url}"
    if event.redirect is not None:
        line += f" -> {event.redirect}"
    elif event.error is not None:
        line += f" ({event.error})"
    print(line, file=sys.stderr, flush=True)


def _summary(result: CrawlResult, elapsed: float, out: TextIO) -> None:
    print(f"crawled {result.start_url} in {elapsed:.2f} s", file=out)
    print(
        f"{len(result.visited)} pages visited, {len(result.errors)} errors, "
        f"{len(result.redirects)} redirects",
        file=out,
    )
    by_reason: Dict[str, List[str]] = {}
    for url, reason in result.errors.items():  # sorted by URL already
        by_reason.setdefault(reason, []).append(url)
    if by_reason:
        print("errors by reason:", file=out)
    for reason, urls in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
        print(f"  {reason} ({len(urls)})", file=out)
        for url in urls:
            print(f"    {url}", file=out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Crawl a site from the command line: ``python -m recipes.crawler URL``.

    Progress goes to stderr, one line per URL; the summary to stdout, or to
    stderr with ``--json``, which prints the result as JSON on stdout.  The
    exit status is 0 when at least one page was visited, 1 when none was,
    and 2 for bad arguments.
    """
    parser = argparse.ArgumentParser(
        prog="python -m recipes.crawler",
        description="Crawl a web site and report the pages visited and the errors met.",
    )
    parser.add_argument("url", help="the start page, an http:// or https:// URL")
    parser.add_argument(
        "--max-depth",
        type=_count(0),
        default=2,
        metavar="N",
        help="follow links up to N links from the start page (default: 2)",
    )
    parser.add_argument(
        "--max-pages",
        type=_count(1),
        default=100,
        metavar="N",
        help="take on at most N URLs (default: 100)",
    )
    parser.add_argument(
        "--concurrency",
        type=_count(1),
        default=10,
        metavar="N",
        help="requests in flight at once (default: 10)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds allowed per request (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also follow links to HOST (repeatable)",
    )
    parser.add_argument(
        "--ignore-robots",
        action="store_true",
        help="do not fetch or obey robots.txt (for your own sites)",
    )
    parser.add_argument(
        "--processes",
        type=_count(0),
        default=None,
        metavar="N",
        help="parse pages in N other processes; 0: in this one (default: one per CPU "
        f"but one, at most {_MAX_PROCESSES})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    try:
        normalize_url(args.url)
        _check_hosts(args.allow_host, normalize_url(args.url))
    except ValueError as exc:
        parser.error(str(exc))

    processes = default_parse_processes() if args.processes is None else args.processes
    started = time.perf_counter()
    pool = parse_pool(processes) if processes else None
    try:
        result = asyncio.run(
            crawl(
                args.url,
                max_depth=args.max_depth,
                max_pages=args.max_pages,
                concurrency=args.concurrency,
                timeout=args.timeout,
                allowed_hosts=args.allow_host,
                respect_robots=not args.ignore_robots,
                progress=None if args.quiet else _print_event,
                executor=pool,
            )
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if pool is not None:
            pool.shutdown()
    elapsed = time.perf_counter() - started
    if args.json:
        document = {
            "start_url": result.start_url,
            "visited": sorted(result.visited),
            "errors": result.errors,
            "redirects": result.redirects,
            "elapsed_seconds": round(elapsed, 3),
        }
        print(json.dumps(document, indent=2))
        _summary(result, elapsed, sys.stderr)
    else:
        _summary(result, elapsed, sys.stdout)
    return 0 if result.visited else 1


if __name__ == "__main__":
    sys.exit(main())
