// Package gcstest runs an in-process Cloud Storage for tests: fake-gcs-server's fakestorage
// behind a thin HTTP layer that makes it honest about the things tamperguard depends on,
// served on loopback with httptest, with a real *storage.Client pointed at it.
//
// # What the bare fake gets wrong (measured, fake-gcs-server v1.56.1)
//
// The tests in this package (TestBareFake*) pin these down; if an upgrade of the fake fixes
// one, its test fails and the layer's workaround can go.
//
//	request                           ifGeneration(Not)Match   ifMetageneration(Not)Match
//	upload (simple/multipart/resum.)  enforced (412)           ignored
//	objects.patch (metadata update)   ignored                  ignored
//	objects.update (PUT)              ignored                  ignored
//	objects.delete                    ignored                  ignored
//	objects.rewrite / copyTo          ignored (dest + source)  ignored
//	objects.compose                   ignored                  ignored
//
// Besides the preconditions:
//   - metageneration is always reported as 1 and never changes, so a metadata update cannot
//     be made conditional on "nobody changed the metadata since I read it";
//   - objects.patch skips empty and null fields: it cannot clear Content-Encoding,
//     Cache-Control, Content-Disposition, Content-Type or custom metadata, and a null
//     custom-metadata key does not delete that key.
//
// # What the layer does
//
//   - Every request that changes objects (anything but GET, HEAD and OPTIONS) is serialized
//     under one mutex, so "read the live attributes, check the precondition, apply" is atomic
//     with respect to every other request that goes through the layer (not with respect to
//     direct calls on Server.Fake, which tests use for seeding).
//   - ifGenerationMatch, ifGenerationNotMatch, ifMetagenerationMatch and
//     ifMetagenerationNotMatch are checked against the fake's backend before a delete, a
//     PUT update, a rewrite/copy (and the ifSource* conditions against the source) or a
//     compose is passed on, and answered with 412 in the JSON error shape of GCS
//     (reason "conditionNotMet") when they do not hold. Generation conditions compare with
//     the live generation (0 = no live object); metageneration conditions with the
//     metageneration of the addressed generation (the generation parameter, else the live
//     one). A delete or update of an object that does not exist is passed on, so the fake
//     answers 404 as GCS does. Uploads: the fake enforces the generation conditions itself;
//     the layer adds the metageneration ones, checked when the upload starts.
//   - objects.patch of the fields tamperguard protects (contentType, contentEncoding,
//     contentDisposition, contentLanguage, cacheControl, metadata) is applied by the layer
//     itself with GCS's patch semantics: a field present with null or "" clears it, custom
//     metadata is merged key by key, a null key deletes it and a null map clears it. A patch
//     that touches any other field is checked and then passed on to the fake.
//   - Metageneration is tracked per generation (starting at 1), bumped by every successful
//     patch, update or ACL change, and written into every object resource the fake returns
//     (get, list, patch, update) and into the X-Goog-Metageneration header of downloads.
//   - Reads of a numbered generation reach the fake one at a time (each until its answer
//     starts): the fake's memory backend appends to a shared slice under its read lock when a
//     generation is asked for, a data race between two such reads (the race detector sees
//     it as soon as reads run concurrently, as an audit's do).
//   - FailNext injects failures (an HTTP status in the GCS JSON error shape, or a dropped
//     connection) for the next n matching requests.
//
// Not modelled: notifications for metadata changes made by the layer (fakestorage's
// notification hooks are unexported; New configures no notifications anyway), the
// X-Goog-Hash checksum that the Go SDK sends on the last chunk of a resumable upload (the
// fake ignores it; so does the layer), and soft delete.
//
// # The client
//
// Server.Client is built the way gcs.NewClient builds a production client: JSON API for
// everything but object reads, XML API for those (GET URL/BUCKET/OBJECT). The fake is
// started with its public host set to the listener's host:port, which is what routes
// such path-style reads to its download handler. JSON reads are not used because the Go
// SDK (v1.65) refuses ReadCompressed with them ("custom Accept-Encoding headers not
// allowed"), and reading the stored bytes of a gzip-encoded object needs ReadCompressed.
//
// The client retries at most MaxAttempts times with millisecond backoff, so tests of
// transient failures are fast: FailNext(..., 1) is absorbed by a retry,
// FailNext(..., MaxAttempts) is not. Uploads retry by their own per-chunk deadline in the
// SDK and are not bounded by MaxAttempts: end them with a context deadline.
package gcstest
