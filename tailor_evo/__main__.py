from tailor_evo.cli import main

main()
