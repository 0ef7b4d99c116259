"""Downloads against a real HTTP server on 127.0.0.1 that misbehaves on purpose.

Expected: exactly the good images stored, each once; every failure reported with its
reason; no partial file anywhere under the catalog root; a second run fetches nothing
already stored.
"""

import io
import sqlite3

import numpy as np
import pytest
import requests
from PIL import Image

from helpers.acquire.download import (
    DownloadReport,
    Photo,
    SearchError,
    download_images,
    read_url_list,
    search_photos,
)
from helpers.acquire.fetch import Fetcher
from helpers.acquire.image_api_server import ImageAPIServer
from helpers.catalog import Catalog
from helpers.files import sha256_bytes

KEY = "test-key-5f1c9b"  # what the local API expects; must never surface anywhere

GOOD = {
    "/img/scene-1.jpg": None,
    "/img/scene-2.png": None,
    "/img/scene-3.webp": None,
    "/fault/flaky/x.png": "HTTP 500",  # 500 once, then 200
    "/fault/busy/x.png": "HTTP 429",  # 429 with Retry-After: 1, then 200
    "/fault/wrong-type": None,  # a JPEG served as text/plain: kept, with a note
    "/fault/same/a.png": None,  # the same bytes under two URLs: stored once
    "/fault/exif": None,  # EXIF orientation 6 plus GPS
}
BAD = {
    "/fault/404": "HTTP 404",
    "/fault/always500": "HTTP 503 (gave up after 3 attempts)",
    "/fault/slow": "timed out",
    "/fault/truncated": "body cut short",
    "/fault/html": "not an image: served as text/html",
    "/fault/bomb": "decompression bomb guard: 12000x12000",
    "/fault/huge": "too large: Content-Length",
    "/fault/huge-stream": "too large: more than",
    "/fault/loop/a": "redirect loop",
}


@pytest.fixture(scope="module")
def server():
    with ImageAPIServer(KEY, slow_seconds=3, huge_bytes=300_000) as srv:
        yield srv


def fast(catalog, items, **kw):
    """download_images with short timeouts and recorded (not slept) retry waits."""
    waits = []
    options = dict(
        read_timeout=0.5, retries=2, backoff=0.01, max_bytes=200_000, progress=False, workers=4
    )
    options.update(kw)
    report = download_images(catalog, items, sleep=waits.append, **options)
    return report, waits


def files_under(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_fault_matrix_stores_exactly_the_good_images_once(server, tmp_path):
    catalog = Catalog(tmp_path / "data")
    urls = [server.url(p) for p in (*GOOD, *BAD)]
    urls += [
        "",
        "   ",
        urls[0],
        "ftp://example.org/a.png",
        "# a comment",
        server.url("/fault/same/b.png"),
    ]
    report, _ = fast(catalog, urls)

    failed = dict(report.failed)
    for path, reason in BAD.items():
        assert reason in failed[server.url(path)], (path, failed[server.url(path)])
    assert "unsupported scheme 'ftp'" in failed["ftp://example.org/a.png"]
    assert len(failed) == len(BAD) + 1

    arrived = {e["url"] for e in report.stored + report.duplicates}
    assert arrived == {server.url(p) for p in GOOD} | {server.url("/fault/same/b.png")}
    assert len(report.duplicates) == 1  # one of the two "same" URLs, whichever came second
    assert report.duplicates[0]["url"].startswith(server.url("/fault/same/"))
    assert catalog.count_images() == len(GOOD)
    assert len({e["sha256"] for e in report.stored}) == len(GOOD)

    # every stored file is whole: it hashes to its name and decodes; no temporary file
    root = catalog.root
    images = files_under(root / "images")
    assert len(images) == len(GOOD)
    for path in images:
        assert path.stem == sha256_bytes(path.read_bytes())
        with Image.open(path) as im:
            im.load()
    assert not [p for p in files_under(root) if p.name.startswith(".tmp")]
    assert {p.name for p in root.iterdir()} <= {
        "images",
        "catalog.sqlite",
        "catalog.sqlite-wal",
        "catalog.sqlite-shm",
    }


def test_retries_honour_retry_after_and_back_off(server, tmp_path):
    catalog = Catalog(tmp_path)
    busy, flaky, down = (server.url(f"/fault/{p}") for p in ("busy/r", "flaky/r", "always500"))
    report, waits = fast(catalog, [busy, flaky, down], backoff=0.25, workers=1)
    retries = {(url, why): wait for url, why, wait in report.retries}
    assert retries[(busy, "HTTP 429")] == 1.0  # the server's Retry-After, not our backoff
    # urllib3's schedule: the first retry at once, then backoff * 2 ** (n - 1)
    assert retries[(flaky, "HTTP 500")] == 0.0
    assert [w for u, _, w in report.retries if u == down] == [0.0, 0.5]
    assert sorted(waits) == sorted(w for _, _, w in report.retries)
    assert {e["url"] for e in report.stored} == {busy, flaky}


def test_retry_after_reads_seconds_and_http_dates_and_is_capped():
    import threading

    fetcher = Fetcher(5, 5, 60, 1000, 3, 0.5, 30.0, None, DownloadReport(), threading.Lock())
    retry = fetcher._retry(3)  # what each session mounts
    assert retry.parse_retry_after("7") == 7.0
    assert retry.parse_retry_after("3600") == 30.0  # capped at max_wait
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry.is_retry("GET", 503) and retry.is_retry("GET", 429)
    assert not retry.is_retry("GET", 404)


def test_a_second_run_downloads_nothing_already_stored(server, tmp_path):
    catalog = Catalog(tmp_path)
    good = [server.url(p) for p in GOOD] + [server.url("/fault/same/b.png")]
    first, _ = fast(catalog, good + [server.url("/fault/404")])
    assert len(first.stored) + len(first.duplicates) == len(good)
    before = server.hits
    second, _ = fast(catalog, good + [server.url("/fault/404")])
    after = server.hits
    assert second.stored == [] and second.duplicates == []
    assert sorted(second.already) == sorted(good)
    assert second.requests == 1  # only the URL that failed is tried again
    changed = {path for path in after if after[path] != before[path]}
    assert changed == {"/fault/404"}
    # a fresh Catalog object on the same folder resumes too (the state is on disk)
    third, _ = fast(Catalog(tmp_path), good)
    assert third.requests == 0 and len(third.already) == len(good)


def test_wrong_content_type_is_kept_with_a_note_because_the_bytes_are_the_truth(server, tmp_path):
    catalog = Catalog(tmp_path)
    url = server.url("/fault/wrong-type")
    report, _ = fast(catalog, [url])
    assert [e["url"] for e in report.stored] == [url]
    assert (url, "served as text/plain but the bytes are JPEG; kept") in report.notes
    assert catalog.images()[0]["format"] == "JPEG"


def test_exif_orientation_is_applied_and_gps_stripped(server, tmp_path):
    catalog = Catalog(tmp_path)
    url = server.url("/fault/exif")
    raw = requests.get(url, timeout=5).content
    with Image.open(io.BytesIO(raw)) as im:
        assert im.size == (60, 40) and im.getexif().get_ifd(0x8825)
    report, _ = fast(catalog, [url])
    notes = [n for u, n in report.notes if u == url]
    assert "applied EXIF orientation 6" in notes
    assert "stripped EXIF (including GPS position)" in notes
    image_id = report.stored[0]["image_id"]
    stored = catalog.image_path(image_id).read_bytes()
    assert sha256_bytes(stored) == report.stored[0]["sha256"]
    with Image.open(io.BytesIO(stored)) as im:
        assert im.size == (40, 60)  # rotated upright
        assert len(im.getexif()) == 0 and "exif" not in im.info
    assert (catalog.image(image_id)["width"], catalog.image(image_id)["height"]) == (40, 60)


def test_exif_can_be_kept_on_request(server, tmp_path):
    catalog = Catalog(tmp_path)
    url = server.url("/fault/exif")
    report, _ = fast(catalog, [url], strip_exif=False)
    assert (
        catalog.image_path(report.stored[0]["image_id"]).read_bytes()
        == requests.get(url, timeout=5).content
    )


def test_url_list_drops_blanks_and_duplicates_and_reports_bad_schemes(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text(
        "\n# photos for the course\nhttp://a.test/1.jpg\n\nhttp://a.test/1.jpg\n"
        "  https://b.test/2.png  \nfile:///etc/passwd\njavascript:alert(1)\nhttp:///nohost\n"
    )
    urls, problems = read_url_list(listing)
    assert urls == ["http://a.test/1.jpg", "https://b.test/2.png"]
    reasons = dict(problems)
    assert reasons["http://a.test/1.jpg"].startswith("duplicate")
    assert "unsupported scheme 'file'" in reasons["file:///etc/passwd"]
    assert "unsupported scheme 'javascript'" in reasons["javascript:alert(1)"]
    assert reasons["http:///nohost"] == "no host in the URL"


def test_search_needs_the_key_from_the_environment_and_never_leaks_it(
    server, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("COURSE_TEST_KEY", raising=False)
    with pytest.raises(SearchError, match="COURSE_TEST_KEY is not set"):
        search_photos("cat", base_url=server.api_url, api_key_env="COURSE_TEST_KEY")
    monkeypatch.setenv("COURSE_TEST_KEY", "wrong-" + KEY)
    with pytest.raises(SearchError, match="refused the key") as err:
        search_photos("cat", base_url=server.api_url, api_key_env="COURSE_TEST_KEY")
    assert KEY not in str(err.value)

    monkeypatch.setenv("COURSE_TEST_KEY", KEY)
    photos = search_photos(
        "shapes cat", n=30, base_url=server.api_url, api_key_env="COURSE_TEST_KEY", size="small"
    )
    assert len(photos) == 25  # 24 scenes and the cat, over two pages
    assert photos[0].author == "Stefan van der Walt" and photos[0].license == "CC0"
    assert "Stefan van der Walt" in photos[0].attribution
    catalog = Catalog(tmp_path)
    report, _ = fast(catalog, photos[:5])
    assert len(report.stored) == 5 and not report.failed
    row = next(r for r in catalog.images() if r["source_url"] == photos[0].url)
    assert row["source_url"] == photos[0].url and row["author"] == photos[0].author
    assert row["license"] == "CC0" and row["retrieved_at"] and row["attribution"]
    catalog.close()
    printed = capsys.readouterr()
    everything = b"".join(p.read_bytes() for p in files_under(tmp_path))
    assert KEY not in printed.out + printed.err and KEY.encode() not in everything
    assert KEY not in repr(server) and KEY not in str(report)


def test_unknown_size_and_empty_results(server, monkeypatch):
    monkeypatch.setenv("COURSE_TEST_KEY", KEY)
    assert search_photos("zebra", base_url=server.api_url, api_key_env="COURSE_TEST_KEY") == []
    with pytest.raises(SearchError, match="size 'huge' not offered"):
        search_photos("cat", base_url=server.api_url, api_key_env="COURSE_TEST_KEY", size="huge")


def test_many_workers_store_the_same_as_one(server, tmp_path):
    photos = [Photo(server.url(f"/img/scene-{i}.png")) for i in range(12)]
    one, _ = fast(Catalog(tmp_path / "one"), photos, workers=1)
    many, _ = fast(Catalog(tmp_path / "many"), photos, workers=6)
    assert {e["sha256"] for e in one.stored} == {e["sha256"] for e in many.stored}
    assert len(many.stored) == 12


def test_the_downloads_table_maps_every_url_to_its_image(server, tmp_path):
    catalog = Catalog(tmp_path)
    a, b = server.url("/fault/same/1.png"), server.url("/fault/same/2.png")
    fast(catalog, [a, b], workers=1)
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    rows = db.execute("SELECT url, image_id FROM downloads ORDER BY url").fetchall()
    assert [r[0] for r in rows] == [a, b] and rows[0][1] == rows[1][1]
    db.close()


def test_bad_worker_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        download_images(Catalog(tmp_path), [], workers=0)


def photo_tree(root, classes=("dog", "frog", "ship"), per_class=40):
    """A class-per-folder tree of small JPEGs whose red channel says the class."""
    for ci, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for j in range(per_class):
            pixels = np.full((8, 8, 3), (80 * ci, 6 * j, 0), np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{j:04d}.jpg", quality=95)
    return root


def test_a_class_query_answers_real_photos_with_a_share_of_wrong_ones(tmp_path, monkeypatch):
    root = photo_tree(tmp_path / "photos")
    monkeypatch.setenv("COURSE_TEST_KEY", KEY)
    with ImageAPIServer(KEY, photos=root, per_class=20, wrong_share=0.1) as srv:
        found = search_photos("dog", n=50, base_url=srv.api_url, api_key_env="COURSE_TEST_KEY")
        assert len(found) == 20 and all(p.license and p.author for p in found)
        truth = [srv.true_class(p.page_url) for p in found]
        assert truth.count("frog") == 2 and truth.count("dog") == 18  # every 10th is wrong
        for photo, shown in zip(found, truth, strict=True):
            body = requests.get(photo.url, timeout=5).content
            red = np.asarray(Image.open(io.BytesIO(body)))[..., 0].mean()
            assert abs(red - 80 * ("dog", "frog", "ship").index(shown)) < 8
        assert srv.true_class(srv.url("/img/scene-1.png")) is None
        # no photo answers two queries: the wrong ones come from past frog's own answers
        frogs = search_photos("frog", n=50, base_url=srv.api_url, api_key_env="COURSE_TEST_KEY")
        urls = [requests.get(p.url, timeout=5).content for p in found + frogs]
        assert len(urls) == 40 and len(set(urls)) == 40, len(set(urls))
        # the scenes and sample photos are still there
        assert (
            len(search_photos("shapes", n=5, base_url=srv.api_url, api_key_env="COURSE_TEST_KEY"))
            == 5
        )


def test_no_wrong_answers_on_request_and_a_bad_share_refused(tmp_path, monkeypatch):
    root = photo_tree(tmp_path / "photos")
    monkeypatch.setenv("COURSE_TEST_KEY", KEY)
    with ImageAPIServer(KEY, photos=root, per_class=20, wrong_share=0.0) as srv:
        found = search_photos("ship", n=50, base_url=srv.api_url, api_key_env="COURSE_TEST_KEY")
        assert {srv.true_class(p.page_url) for p in found} == {"ship"}
    with pytest.raises(ValueError, match="wrong_share"):
        ImageAPIServer(KEY, photos=root, wrong_share=1.0)
