// Package testutil holds what herd's tests share: the one loop that waits
// for a condition with a deadline, and a buffer that a process's logger
// and the test may use at once.
//
// A herd test never sleeps for a guessed time to let something happen: it
// waits for the condition itself, with a deadline, through WaitUntil or
// one of the helpers built on it.
package testutil
