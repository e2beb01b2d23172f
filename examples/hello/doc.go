// Command hello is herd's reference application: a chi router with herd's
// metrics middleware, served by N worker processes.
//
//	GET /hello        200 {"msg":"hello"}
//	GET /users/{id}   200 {"id":"<id>"}
//	GET /sleep/{ms}   waits ms milliseconds (at most 10,000), then 200
//
// Run it with -h for the flags. Besides herd's, it has one of its own:
// -greeting-file FILE replaces "hello" in /hello's answer by the first
// line of FILE, read when each worker starts; a file that cannot be read
// stops the program at start-up (exit status 3, the reason on the last
// line).
package main
