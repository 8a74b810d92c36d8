from gancore_cli.app import main

main()
