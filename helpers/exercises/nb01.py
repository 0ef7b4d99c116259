"""Checks for the exercises of notebook 01 (acquire images into a catalog)."""

from helpers.exercises import Exercise, all_of, field, one_of


def _refused_as_too_large(answer):
    count = float(answer)
    if count < 3:
        return (
            "count every `failed` line whose reason says 'too large': the limit now refuses "
            "more than the huge file, so compare each one's Content-Length with 10,000."
        )
    if count > 3:
        return (
            "only files over 10,000 bytes are refused for their size; the other failures "
            "keep their own reasons (404, timeout, redirect loop, ...)."
        )
    return None


EXERCISES = {
    1: Exercise(
        form="a tuple (images the second run adds to the catalog, HTTP requests of its "
        "web-search download, why the port: 'a' the URLs hold it, 'b' the catalog stores "
        "it, 'c' the key is tied to it)",
        expect="nothing new: the catalog holds as many images after the second run as before "
        "it (253 in a smoke run), and web_report reads 'already stored' for every search "
        "photo with 0 HTTP requests; only the URLs that failed are tried again. The catalog "
        "knows a download by its URL, and the URL holds the port: on a new port every photo "
        "is new to it and is fetched again.",
        judge=all_of(
            field(
                0,
                one_of(
                    [0],
                    hint="compare the image count the catalog prints when it opens with "
                    "the one recorded at the end (images_in_catalog).",
                ),
            ),
            field(
                1,
                one_of(
                    [0],
                    hint="read the first line web_report prints in the second run: how "
                    "many HTTP requests, for how many photos already stored?",
                ),
            ),
            field(
                2,
                one_of(
                    ["a"],
                    hint="print a few of the photos' URLs: what in them changes when "
                    "LOCAL_API_PORT does, and how does the catalog know a download?",
                ),
            ),
        ),
    ),
    2: Exercise(
        form="'a' (every photo that carries EXIF), 'b' (only the photos whose EXIF asks for "
        "a rotation) or 'c' (all of them, to make them JPEG)",
        expect="only the photos with an EXIF orientation other than 1 (a phone held "
        "sideways): the report says 'applied EXIF orientation' for them. Storing upright "
        "pixels needs a new encoding; every other file loses its EXIF byte-wise and keeps "
        "its pixels exactly.",
        judge=one_of(
            ["b"],
            hint="read the report's `changed` lines, then compare a stored file's bytes "
            "with the original for a photo whose note says only 'stripped EXIF'.",
        ),
    ),
    3: Exercise(
        form="a number: how many downloads of the URL list are refused as 'too large' now",
        expect="3, and 9 failures instead of 8: the flaky PNG (24 kB), which arrived before, "
        "now fails as too large; the bomb (17.6 kB) is refused for its size before the bomb "
        "guard looks at it; the huge file as before. The generated scenes, a few kB each, "
        "still arrive.",
        judge=_refused_as_too_large,
    ),
    4: Exercise(
        form="a string: the provenance table's column that names each photographer",
        expect="'author', beside 'license' and 'attribution' (the credit line, 'Photo by ... "
        "on ...'): with a Pexels key, the photographers of your query and the Pexels "
        "License; with the local server, the sample photos' authors and their licenses.",
        judge=one_of(
            ["author"],
            hint="print table.columns: one column holds the name alone, another the whole "
            "credit line.",
        ),
    ),
    5: Exercise(
        form="a tuple (how many downloads of the URL list a strict option would reject, "
        "what still keeps a non-image out: 'a' the Content-Type, 'b' the bytes' magic "
        "number and a full decode, 'c' the file name's extension)",
        expect="1, the JPEG served as text/plain. The bytes decide what an image is: the "
        "HTML page served with status 200 is refused for its bytes whatever its header "
        "says, so rejecting a real image for a wrong Content-Type gains no safety and loses "
        "good images from the many servers that send application/octet-stream.",
        judge=all_of(
            field(
                0,
                one_of(
                    [1],
                    hint="count the notes in list_report.notes that start with 'served as'.",
                ),
            ),
            field(
                1,
                one_of(
                    ["b"],
                    hint="read helpers/images/__init__.py: how does the gate tell a format, "
                    "and when does a truncated file fail?",
                ),
            ),
        ),
    ),
}
