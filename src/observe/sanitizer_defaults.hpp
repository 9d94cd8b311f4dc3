#pragma once
// Included by exactly one file of each program (the file with main): the ThreadSanitizer build
// stops at its first report, as the ASan+UBSan build does (-fno-sanitize-recover), so a test
// cannot pass over a data race, and a race inside Sluice run by an integration test kills it.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
extern "C" const char* __tsan_default_options() {
  return "halt_on_error=1:abort_on_error=1:second_deadlock_stack=1";
}
#endif
#endif
