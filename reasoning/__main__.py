from reasoning.cli import main

main()
