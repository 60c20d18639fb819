from titan.cli.main import main

main()
