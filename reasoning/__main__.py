from thinktrace.cli import main

main()
